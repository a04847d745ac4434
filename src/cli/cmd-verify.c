/* castore verify: runs the store checker (castore/check.h with the Nix
 * layer, store/check.h), prints one line per problem and exits 1 if there
 * was one. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "store/check.h"
#include "util/log.h"

static void print_problem(void *userdata, const struct cas_problem *p) {
        (void) userdata;
        printf("%s\n", p->message); /* stdio locks the stream: lines stay whole */
        if (p->repaired)
                printf("removed corrupt blob %s\n", CAS_DIGEST_B3(&p->digest));
}

static int run_verify(int argc, char **argv) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                { "nar", no_argument, NULL, 'n' },
                { "repair", no_argument, NULL, 'r' },
                {},
        };
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        struct nix_check_opts o = {};
        struct nix_check_stats st = {};
        int opt, r;

        optind = 0;
        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                if (opt == 'n')
                        o.nar = true;
                else if (opt == 'r')
                        o.repair = true;
                else
                        return -EINVAL;
        }
        if (optind != argc)
                return cli_usage_error("verify", "no arguments expected");
        /* LMDB read-only: works on a store being imported into; only
         * --repair writes (it removes blob files) */
        r = cli_store_open(CAS_STORE_READONLY, &store, &pis);
        if (r < 0)
                return r;
        if (cli_store_is_remote() && !o.nar) {
                /* a remote daemon lists no blobs or directories: reach them
                 * through each store path's NAR instead */
                log_notice("Remote store: checking every store path's contents through its NAR (--nar)");
                o.nar = true;
        }

        r = nix_check_store(store, pis, &o, print_problem, NULL, &st);
        fflush(stdout);
        if (r < 0)
                return r;
        log_notice("checked %llu blobs, %llu directories, %llu roots, %llu store paths: %llu problem%s",
                   (unsigned long long) st.cas.blobs, (unsigned long long) st.cas.directories,
                   (unsigned long long) st.cas.roots, (unsigned long long) st.store_paths,
                   (unsigned long long) st.cas.problems, st.cas.problems == 1 ? "" : "s");
        return st.cas.problems > 0 ? -EBADMSG : 0;
}

const struct cli_command cli_cmd_verify = {
        .name = "verify",
        .run = run_verify,
        .usage = "[--nar] [--repair]",
        .help = "re-hash every blob and directory, check every reference (--nar: and each store path's NAR; "
                "--repair: remove corrupt blobs, for a re-import to store again); exit 1 on any problem",
};
