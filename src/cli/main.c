/* notegw: the operator's command line. Global options, dispatch over the command
 * tables of cli.h, and the one way to talk to the daemon (cli_call). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"

#define CLI_DEFAULT_SOCKET "/run/notegw/control.sock"
#define CLI_MAX_RESPONSE   (64u * 1024 * 1024)
#define CLI_TIMEOUT_MS     (180 * 1000) /* a raw request may wait on the card's retries */

static const struct cli_cmd *const tables[] = {cli_cmds_core, cli_cmds_crypto, cli_cmds_update};

void cli_print_json(json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
	if (s) {
		fputs(s, stdout);
		fputc('\n', stdout);
	}
	free(s);
}

char *cli_read_all(const char *path, size_t max, size_t *len)
{
	FILE *f = stdin;
	bool own = path && strcmp(path, "-") != 0;
	if (own && !(f = fopen(path, "r")))
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	if (!buf)
		goto fail;
	for (;;) {
		if (n + 1 >= cap) {
			if (cap > max) {
				errno = EFBIG;
				goto fail;
			}
			char *nb = realloc(buf, cap * 2);
			if (!nb)
				goto fail;
			buf = nb;
			cap *= 2;
		}
		size_t k = fread(buf + n, 1, cap - n - 1, f);
		n += k;
		if (k == 0) {
			if (ferror(f)) {
				errno = EIO;
				goto fail;
			}
			break;
		}
	}
	if (n > max) {
		errno = EFBIG;
		goto fail;
	}
	buf[n] = '\0';
	if (len)
		*len = n;
	if (own)
		fclose(f);
	return buf;
fail:
	free(buf);
	if (own)
		fclose(f);
	return NULL;
}

static int cli_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* One line from fd (newline excluded), bounded and timed. Caller frees. */
static char *read_line(int fd, size_t max)
{
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, CLI_TIMEOUT_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			errno = r == 0 ? ETIMEDOUT : errno;
			break;
		}
		if (n + 1 >= cap) {
			if (cap >= max) {
				errno = EFBIG;
				break;
			}
			char *nb = realloc(buf, cap * 2);
			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		ssize_t k = recv(fd, buf + n, cap - n - 1, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k == 0)
				errno = ECONNRESET;
			break;
		}
		char *nl = memchr(buf + n, '\n', (size_t)k);
		n += (size_t)k;
		if (nl) {
			*nl = '\0';
			return buf;
		}
	}
	free(buf);
	return NULL;
}

int cli_call(struct cli *cli, json_t *req, json_t **rsp)
{
	int ret = CLI_UNREACHABLE;
	char *text = NULL, *line = NULL;
	*rsp = NULL;
	int fd = cli_connect(cli->socket);
	if (fd < 0) {
		int e = errno;
		fprintf(stderr, "%s: cannot reach the daemon at %s: %s%s\n", cli->prog, cli->socket,
		        strerror(e),
		        e == EACCES                        ? " (are you in the notegw group?)"
		        : e == ENOENT || e == ECONNREFUSED ? " (is notegwd running?)"
		                                           : "");
		return CLI_UNREACHABLE;
	}
	text = json_dumps(req, JSON_COMPACT);
	if (!text)
		goto out;
	size_t n = strlen(text);
	text[n] = '\n'; /* the NUL becomes the line's end: n + 1 bytes to send */
	size_t off = 0;
	while (off < n + 1) {
		ssize_t k = send(fd, text + off, n + 1 - off, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EPIPE || errno == ECONNRESET))
			break; /* it hung up: a refusal may be waiting to be read */
		if (k < 0) {
			fprintf(stderr, "%s: sending to the daemon: %s\n", cli->prog,
			        strerror(errno));
			goto out;
		}
		off += (size_t)k;
	}
	line = read_line(fd, CLI_MAX_RESPONSE);
	if (!line) {
		fprintf(stderr, "%s: no answer from the daemon: %s\n", cli->prog, strerror(errno));
		goto out;
	}
	json_error_t jerr;
	json_t *j = json_loads(line, 0, &jerr);
	if (!json_is_object(j)) {
		fprintf(stderr, "%s: the daemon's answer is not a JSON object: %s\n", cli->prog,
		        j ? "" : jerr.text);
		json_decref(j);
		ret = CLI_REFUSED;
		goto out;
	}
	*rsp = j;
	if (json_is_true(json_object_get(j, "ok"))) {
		ret = CLI_OK;
	} else {
		const char *e = json_string_value(json_object_get(j, "error"));
		fprintf(stderr, "%s: %s\n", cli->prog, e ? e : "the daemon said no");
		if (cli->json)
			cli_print_json(j); /* scripts get the code too */
		/* EAGAIN (not accepted for now) and EBUSY (too many clients) pass */
		json_int_t code = json_integer_value(json_object_get(j, "code"));
		ret = code == EAGAIN || code == EBUSY ? CLI_TRY_AGAIN : CLI_REFUSED;
	}
out:
	free(text);
	free(line);
	close(fd);
	return ret;
}

static const struct cli_cmd *find_cmd(const char *name)
{
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct cli_cmd *c = tables[t]; c->name; c++)
			if (strcmp(c->name, name) == 0)
				return c;
	return NULL;
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
	        "usage: %s [-s SOCKET] [--json] COMMAND [ARGS]\n"
	        "       %s --version | --help | help COMMAND\n\n"
	        "Talks to notegwd over its control socket (default %s).\n\n"
	        "options:\n"
	        "  -s, --socket PATH  the daemon's control socket\n"
	        "      --json         print the daemon's answers as JSON (any command)\n"
	        "  -h, --help         this help\n"
	        "      --version      print the version\n\n"
	        "commands:\n",
	        prog, prog, CLI_DEFAULT_SOCKET);
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct cli_cmd *c = tables[t]; c->name; c++)
			fprintf(f, "  %-8s %-28s %s\n", c->name, c->args ? c->args : "",
			        c->help ? c->help : "");
	fprintf(f, "\nexit status: 0 ok, 1 the daemon or the Notecard said no, 2 usage error,\n"
	           "3 cannot reach the daemon, 4 not now: try again later (disk full, too many\n"
	           "clients).\n");
}

static void cmd_usage(FILE *f, const char *prog, const struct cli_cmd *c)
{
	fprintf(f, "usage: %s %s %s\n  %s\n", prog, c->name, c->args ? c->args : "",
	        c->help ? c->help : "");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct cli cli = {.socket = CLI_DEFAULT_SOCKET, .prog = "notegw"};
	int o;
	/* '+': options after the command belong to the command */
	while ((o = getopt_long(argc, argv, "+s:h", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			cli.socket = optarg;
			break;
		case 'j':
			cli.json = true;
			break;
		case 'h':
			usage(stdout, cli.prog);
			return CLI_OK;
		case 'V':
			printf("notegw " PACKAGE_VERSION "\n");
			return CLI_OK;
		default:
			usage(stderr, cli.prog);
			return CLI_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr, cli.prog);
		return CLI_USAGE;
	}
	char **av = argv + optind;
	int ac = argc - optind;
	if (strcmp(av[0], "help") == 0) {
		if (ac < 2) {
			usage(stdout, cli.prog);
			return CLI_OK;
		}
		const struct cli_cmd *c = find_cmd(av[1]);
		if (!c) {
			fprintf(stderr, "%s: unknown command '%s'\n", cli.prog, av[1]);
			return CLI_USAGE;
		}
		cmd_usage(stdout, cli.prog, c);
		return CLI_OK;
	}
	const struct cli_cmd *c = find_cmd(av[0]);
	if (!c) {
		fprintf(stderr, "%s: unknown command '%s' (try '%s --help')\n", cli.prog, av[0],
		        cli.prog);
		return CLI_USAGE;
	}
	/* --json and --help are understood after any command: take them out here so each
	 * command only parses its own arguments; "--" ends the scan. */
	int k = 1;
	for (int i = 1; i < ac; i++) {
		if (strcmp(av[i], "--") == 0) {
			while (i < ac)
				av[k++] = av[i++];
			break;
		}
		if (strcmp(av[i], "--json") == 0) {
			cli.json = true;
			continue;
		}
		if (strcmp(av[i], "--help") == 0 || strcmp(av[i], "-h") == 0) {
			cmd_usage(stdout, cli.prog, c);
			return CLI_OK;
		}
		av[k++] = av[i];
	}
	av[k] = NULL;
	return c->run(&cli, k, av);
}
