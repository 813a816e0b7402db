/* mbhost: runs one plugin .so under the fake host, for the integration tests.
 *   mbhost [--check] CONFIG PLUGIN.so
 * Events (notes, emits, inbound_done) go to stdout as JSON lines. Commands on
 * stdin, one per line:
 *   inbound ID FILE BODY-JSON   deliver an inbound note
 *   stats                       print {"event":"stats","stats":{...}}
 *   status JSON                 set the host status and call on_status
 *   reload                      re-read CONFIG, configure into a fresh priv, reload
 *   quit                        stop and exit 0
 * MBHOST_FILL_FDS=N takes every fd below N before the plugin starts, so its sockets
 * land where libmodbus's select() cannot go (FD_SETSIZE is 1024). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../fakehost/fakehost.h"

static const struct ngw_plugin_desc *desc;
static struct fakehost host;
static char inbuf[65536];
static size_t inlen;

static void command(char *line)
{
	struct ngw_plugin *self = &host.plugin;

	if (strncmp(line, "inbound ", 8) == 0) {
		char *id = line + 8, *file = strchr(id, ' '), *body;
		if (!file)
			return;
		*file++ = '\0';
		body = strchr(file, ' ');
		if (body)
			*body++ = '\0';
		struct ngw_note n = {.id = strtoll(id, NULL, 10), .file = file, .body = body};
		if (desc->on_inbound)
			desc->on_inbound(self, &n);
	} else if (strcmp(line, "stats") == 0) {
		char *s = desc->stats_json ? desc->stats_json(self) : NULL;
		printf("{\"event\":\"stats\",\"stats\":%s}\n", s ? s : "null");
		fflush(stdout);
		free(s);
	} else if (strncmp(line, "status ", 7) == 0) {
		free(host.status);
		host.status = strdup(line + 7);
		if (desc->on_status)
			desc->on_status(self, line + 7);
		printf("{\"event\":\"status-set\"}\n");
		fflush(stdout);
	} else if (strcmp(line, "reload") == 0) {
		void *old = self->priv;
		int rc;
		if (fakehost_reread(&host) < 0)
			return;
		self->priv = NULL;
		rc = desc->configure(self);
		void *fresh = self->priv;
		self->priv = old;
		if (rc == 0)
			rc = desc->reload(self, fresh);
		printf("{\"event\":\"reloaded\",\"rc\":%d}\n", rc);
		fflush(stdout);
	} else if (strcmp(line, "quit") == 0) {
		sd_event_exit(host.ev, 0);
	}
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	ssize_t n = read(fd, inbuf + inlen, sizeof(inbuf) - 1 - inlen);
	char *nl;

	if (n <= 0) {
		sd_event_exit(host.ev, 0);
		return 0;
	}
	inlen += (size_t)n;
	inbuf[inlen] = '\0';
	while ((nl = strchr(inbuf, '\n')) != NULL) {
		*nl = '\0';
		command(inbuf);
		memmove(inbuf, nl + 1, inlen - (size_t)(nl + 1 - inbuf) + 1);
		inlen -= (size_t)(nl + 1 - inbuf);
	}
	if (inlen == sizeof(inbuf) - 1)
		inlen = 0; /* an absurd line: drop it */
	return 0;
}

int main(int argc, char **argv)
{
	const struct ngw_plugin_desc *(*describe)(void);
	bool check = argc > 1 && strcmp(argv[1], "--check") == 0;
	sd_event *ev = NULL;
	void *dl;
	int rc;

	if (argc != 3 + check) {
		fprintf(stderr, "usage: mbhost [--check] CONFIG PLUGIN.so\n");
		return 2;
	}
	dl = dlopen(argv[2 + check], RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		fprintf(stderr, "mbhost: %s\n", dlerror());
		return 2;
	}
	describe = (const struct ngw_plugin_desc *(*)(void))dlsym(dl, "notegw_plugin_describe");
	if (!describe || (desc = describe()) == NULL || desc->abi >> 16 != NGW_PLUGIN_ABI_MAJOR) {
		fprintf(stderr, "mbhost: not a plugin of this ABI\n");
		return 2;
	}
	sd_event_default(&ev);
	if (fakehost_init(&host, argv[1 + check], NULL, ev) < 0) {
		fprintf(stderr, "mbhost: cannot read %s\n", argv[1 + check]);
		return 2;
	}
	host.out = stdout;
	host.status = getenv("MBHOST_STATUS") ? strdup(getenv("MBHOST_STATUS")) : NULL;
	rc = desc->configure(&host.plugin);
	if (rc < 0 || check) {
		if (host.plugin.priv && desc->destroy)
			desc->destroy(&host.plugin);
		fakehost_fini(&host);
		sd_event_unref(ev);
		dlclose(dl);
		return rc < 0 ? 1 : 0;
	}
	if (desc->disabled && desc->disabled(&host.plugin)) {
		fprintf(stderr, "mbhost: plugin disabled\n");
		rc = 0;
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	sd_event_add_signal(ev, NULL, SIGTERM, NULL, NULL);
	sd_event_add_signal(ev, NULL, SIGINT, NULL, NULL);
	sd_event_add_io(ev, NULL, 0, EPOLLIN, on_stdin, NULL);
	if (getenv("MBHOST_FILL_FDS")) {
		int n = atoi(getenv("MBHOST_FILL_FDS")),
		    nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
		/* dup() returns the lowest free fd: this fills every hole below n */
		while (nul >= 0) {
			int fd = fcntl(nul, F_DUPFD_CLOEXEC, 0);
			if (fd < 0 || fd >= n - 1)
				break;
		}
	}
	rc = desc->start(&host.plugin);
	if (rc < 0) {
		fprintf(stderr, "mbhost: start: %s\n", strerror(-rc));
		rc = 1;
		goto out;
	}
	printf("{\"event\":\"started\"}\n");
	fflush(stdout);
	rc = sd_event_loop(ev);
	desc->stop(&host.plugin);
	rc = rc < 0 ? 1 : 0;
out:
	desc->destroy(&host.plugin);
	fakehost_fini(&host);
	sd_event_unref(ev);
	dlclose(dl);
	return rc;
}
