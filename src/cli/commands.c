/* The table of castore subcommands, in the order "castore help" lists them.
 * Each command lives in its own src/cli/cmd-*.c file. */
#include "cli.h"

const struct cli_command *const cli_commands[] = {
        NULL,
};
