/* update.c: being written (foundation, issue 2). */
#include "cli/cli.h"
const struct cli_cmd cli_cmds_update[] = {{0}};
