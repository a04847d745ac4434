/* castore verify: runs the store checker (castore/check.h with the Nix
 * layer, store/check.h), prints one line per problem (or, --json, one
 * report) and exits 1 if there was one. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "cli/cli.h"
#include "store/check.h"
#include "util/json.h"
#include "util/log.h"

static void print_problem(void *userdata, const struct cas_problem *p) {
        (void) userdata;
        printf("%s\n", p->message); /* stdio locks the stream: lines stay whole */
        if (p->repaired)
                printf("removed corrupt blob %s\n", CAS_DIGEST_B3(&p->digest));
}

/* --json: problems as the elements of a "problems" list (calls are
 * serialised by the checker). */
static void json_problem(void *userdata, const struct cas_problem *p) {
        unsigned *n = userdata;

        printf("%s\n    {\"kind\": %d, \"message\": ", (*n)++ ? "," : "", p->kind);
        json_cstring(stdout, p->message);
        if (p->has_digest)
                printf(", \"digest\": \"%s\"", CAS_DIGEST_B3(&p->digest));
        if (p->name) {
                printf(", \"name\": ");
                json_cstring(stdout, p->name);
        }
        if (p->referrer) {
                printf(", \"referrer\": ");
                json_cstring(stdout, p->referrer);
        }
        printf(", \"repaired\": %s}", p->repaired ? "true" : "false");
}

static int run_verify(int argc, char **argv) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                { "nar", no_argument, NULL, 'n' },
                { "repair", no_argument, NULL, 'r' },
                { "json", no_argument, NULL, 'j' },
                { "progress", no_argument, NULL, 'p' },
                { "no-progress", no_argument, NULL, 'P' },
                {},
        };
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        struct nix_check_opts o = { .progress = isatty(STDERR_FILENO) };
        bool json = false;
        unsigned n_json = 0;
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
                else if (opt == 'j')
                        json = true;
                else if (opt == 'p' || opt == 'P')
                        o.progress = opt == 'p';
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

        if (json)
                printf("{\"problems\": [");
        r = nix_check_store(store, pis, &o, json ? json_problem : print_problem, &n_json, &st);
        if (json && r >= 0)
                printf("%s], \"blobs\": %llu, \"directories\": %llu, \"roots\": %llu, \"store_paths\": %llu}\n",
                       n_json ? "\n  " : "", (unsigned long long) st.cas.blobs,
                       (unsigned long long) st.cas.directories, (unsigned long long) st.cas.roots,
                       (unsigned long long) st.store_paths);
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
        .usage = "[--nar] [--repair] [--json] [--progress|--no-progress]",
        .help = "re-hash every blob and directory, check every reference (--nar: and each store path's NAR; "
                "--repair: remove corrupt blobs, for a re-import to store again); exit 1 on any problem",
};
