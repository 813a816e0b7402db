/* The operator's command line: one file per subcommand group, one table here.
 * Exit codes (interface.md): 0 ok, 1 the daemon or card said no, 2 usage,
 * 3 cannot reach the daemon, 4 the daemon cannot take it now, try again later (a
 * full disk, too many clients). */
#ifndef NOTEGW_CLI_H
#define NOTEGW_CLI_H
#include <jansson.h>
#include <stdbool.h>

enum { CLI_OK = 0, CLI_REFUSED = 1, CLI_USAGE = 2, CLI_UNREACHABLE = 3, CLI_TRY_AGAIN = 4 };

struct cli {
	const char *socket;
	bool json;
	const char *prog;
};

/* One request to the daemon: req borrowed; *rsp gets the response object on
 * success (caller decrefs). Returns CLI_OK, CLI_REFUSED or CLI_TRY_AGAIN (rsp holds
 * the error, which cli_call already printed to stderr) or CLI_UNREACHABLE (printed). */
int cli_call(struct cli *cli, json_t *req, json_t **rsp);
/* Print a JSON value compactly-indented to stdout (for --json). */
void cli_print_json(json_t *v);
/* Read all of stdin or a file into a NUL-terminated buffer (caller frees). */
char *cli_read_all(const char *path, size_t max, size_t *len);

struct cli_cmd {
	const char *name;
	const char *args;       /* usage text after the name */
	const char *help;
	int (*run)(struct cli *cli, int argc, char **argv); /* argv[0] = name */
};

/* Each group file defines its table; cli/main.c lists them. */
extern const struct cli_cmd cli_cmds_core[];    /* status queue send req sync audit */
extern const struct cli_cmd cli_cmds_crypto[];  /* keys decrypt */
extern const struct cli_cmd cli_cmds_update[];  /* update */
#endif
