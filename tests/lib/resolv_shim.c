/*
 * LD_PRELOAD shim: a host name that resolves to several addresses, in a chosen order,
 * without touching the machine's resolver (/etc/hosts is not the tests' to edit). With
 * $NOTEGW_SHIM_RESOLVE set to "name=addr1,addr2,...", getaddrinfo() of that name answers
 * the numeric addresses in that order (each through the real getaddrinfo with
 * AI_NUMERICHOST, the lists chained); every other call passes through. glibc's
 * freeaddrinfo() frees node by node, so the chained list is freed as any other.
 *
 * Under ASan built with gcc, LD_PRELOAD must list libasan.so first, then this library.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

static gai_fn real_gai(void)
{
	static gai_fn fn;
	if (!fn)
		fn = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
	return fn;
}

/* The addresses for node from $NOTEGW_SHIM_RESOLVE, or NULL when it is not the name. */
static const char *mapped(const char *node)
{
	const char *spec = getenv("NOTEGW_SHIM_RESOLVE");
	const char *eq = spec ? strchr(spec, '=') : NULL;

	if (!node || !eq || strlen(node) != (size_t)(eq - spec) ||
	    strncmp(node, spec, (size_t)(eq - spec)) != 0)
		return NULL;
	return eq + 1;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
	const char *list = mapped(node);
	struct addrinfo h = {0}, *head = NULL, **tail = &head, *one;
	char addr[64];

	if (!real_gai())
		return EAI_SYSTEM;
	if (!list)
		return real_gai()(node, service, hints, res);
	if (hints)
		h = *hints;
	h.ai_flags |= AI_NUMERICHOST;
	while (*list) {
		size_t n = strcspn(list, ",");
		if (n > 0 && n < sizeof(addr)) {
			memcpy(addr, list, n);
			addr[n] = '\0';
			if (real_gai()(addr, service, &h, &one) == 0) {
				*tail = one;
				while (*tail)
					tail = &(*tail)->ai_next;
			}
		}
		list += n + (list[n] == ',');
	}
	*res = head;
	return head ? 0 : EAI_NONAME;
}
