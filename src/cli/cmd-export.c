/* castore export: writes a stored tree to disk through cas_export_tree
 * (castore/export.h), which verifies every file's content before it
 * appears under its name. */
#include <errno.h>
#include <getopt.h>
#include <unistd.h>

#include "castore/export.h"
#include "cli/cli.h"
#include "util/log.h"

static int run_export(int argc, char **argv) {
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        _cleanup_(nix_resolved_done) struct nix_resolved res = {};
        struct cas_export_stats st;
        int r;

        r = cli_parse_common_only(argc, argv);
        if (r < 0)
                return r;
        optind = r;
        if (argc - optind != 2)
                return cli_usage_error("export", "expected NAME[/PATH] DEST");
        const char *dest = argv[optind + 1];
        r = cli_store_open(0, &store, &pis);
        if (r < 0)
                return cli_failure(r);
        r = cli_resolve(store, pis, argv[optind], 0, &res);
        if (r < 0)
                return r;
        r = cas_export_tree(store, &res.node, dest, isatty(STDERR_FILENO) ? CAS_EXPORT_PROGRESS : 0, &st);
        if (r < 0)
                return cli_failure(r);
        log_info("exported %llu files, %llu directories, %llu symlinks to %s", (unsigned long long) st.files,
                 (unsigned long long) st.directories, (unsigned long long) st.symlinks, dest);
        return 0;
}

const struct cli_command cli_cmd_export = {
        .name = "export",
        .run = run_export,
        .usage = "NAME[/PATH] DEST",
        .help = "write a stored tree to DEST on disk (content verified)",
        .names_trees = true,
};
