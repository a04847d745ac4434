/* The table of castore subcommands, in the order "castore help" lists them.
 * Each command lives in its own src/cli/cmd-*.c file. */
#include "cli/cli.h"

extern const struct cli_command cli_cmd_import, cli_cmd_ls, cli_cmd_stat, cli_cmd_cat, cli_cmd_export,
        cli_cmd_verify, cli_cmd_gc;
extern const struct cli_command cli_cmd_nar, cli_cmd_path_info, cli_cmd_copy, cli_cmd_cache;
extern const struct cli_command cli_cmd_virtiofs;
extern const struct cli_command cli_cmd_mount, cli_cmd_umount;
extern const struct cli_command cli_cmd_daemon;
extern const struct cli_command cli_cmd_roots, cli_cmd_rm, cli_cmd_info;

const struct cli_command *const cli_commands[] = {
        &cli_cmd_import,
        &cli_cmd_ls,
        &cli_cmd_stat,
        &cli_cmd_cat,
        &cli_cmd_export,
        &cli_cmd_verify,
        &cli_cmd_gc,
        &cli_cmd_roots,
        &cli_cmd_rm,
        &cli_cmd_info,
        &cli_cmd_nar,
        &cli_cmd_path_info,
        &cli_cmd_copy,
        &cli_cmd_cache,
        &cli_cmd_virtiofs,
        &cli_cmd_mount,
        &cli_cmd_umount,
        &cli_cmd_daemon,
        NULL,
};
