/* castore gc: collects the local store's garbage (store/gc.h) and prints
 * what it freed, as text or --json. */
#include <errno.h>
#include <getopt.h>
#include <unistd.h>
#include <stdio.h>

#include "cli/cli.h"
#include "store/gc.h"
#include "util/json.h"
#include "util/log.h"

static void print_json(const struct cas_gc_stats *st, bool dry_run) {
        printf("{\"store\": ");
        json_cstring(stdout, cli_store_url());
        printf(", \"dryRun\": %s, \"roots\": %llu, \"liveDirectories\": %llu, \"liveBlobs\": %llu,\n",
               dry_run ? "true" : "false", (unsigned long long) st->roots,
               (unsigned long long) st->live_directories, (unsigned long long) st->live_blobs);
        printf(" \"directories\": %llu, \"directoryBytes\": %llu, \"blobs\": %llu, \"blobBytes\": %llu,\n",
               (unsigned long long) st->directories, (unsigned long long) st->directory_bytes,
               (unsigned long long) st->blobs, (unsigned long long) st->blob_bytes);
        printf(" \"temporaries\": %llu, \"temporaryBytes\": %llu, \"packsRewritten\": %llu, \"bytes\": %llu}\n",
               (unsigned long long) st->temporaries, (unsigned long long) st->temporary_bytes,
               (unsigned long long) st->packs,
               (unsigned long long) (st->directory_bytes + st->blob_bytes + st->temporary_bytes));
}

static void print_text(const struct cas_gc_stats *st, bool dry_run) {
        const char *verb = dry_run ? "would remove" : "removed";

        printf("%s %llu directories (%llu bytes), %llu blobs (%llu bytes), %llu temporary files (%llu bytes)\n",
               verb, (unsigned long long) st->directories, (unsigned long long) st->directory_bytes,
               (unsigned long long) st->blobs, (unsigned long long) st->blob_bytes,
               (unsigned long long) st->temporaries, (unsigned long long) st->temporary_bytes);
        if (st->packs > 0)
                printf("%s %llu pack files\n", dry_run ? "would rewrite" : "rewrote", (unsigned long long) st->packs);
        printf("kept %llu directories and %llu blobs reachable from %llu roots\n",
               (unsigned long long) st->live_directories, (unsigned long long) st->live_blobs,
               (unsigned long long) st->roots);
}

static int run_gc(int argc, char **argv) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                { "dry-run", no_argument, NULL, 'n' },
                { "json", no_argument, NULL, 'j' },
                { "progress", no_argument, NULL, 'p' },
                { "no-progress", no_argument, NULL, 'P' },
                {},
        };
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        struct cas_gc_opts o = { .progress = isatty(STDERR_FILENO) };
        struct cas_gc_stats st = {};
        bool json = false;
        int opt, r;

        optind = 0;
        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "n", opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                if (opt == 'n')
                        o.dry_run = true;
                else if (opt == 'j')
                        json = true;
                else if (opt == 'p' || opt == 'P')
                        o.progress = opt == 'p';
                else
                        return -EINVAL;
        }
        if (optind != argc)
                return cli_usage_error("gc", "no arguments expected");
        if (cli_store_is_shared()) {
                /* the store's lock does not reach the other users of shared
                 * blobs or directories */
                log_error("gc collects a local store only: blobs in a gRPC daemon or an object store, and "
                          "directories or PathInfos in a daemon or PostgreSQL, are shared with other stores "
                          "(run castore gc where a daemon's store lives, with --store pointing at its directory)");
                return -EOPNOTSUPP;
        }
        r = cli_store_open(0, &store, &pis);
        if (r < 0)
                return r;
        r = nix_gc_store(store, pis, &o, &st);
        if (r < 0)
                return r;
        if (json)
                print_json(&st, o.dry_run);
        else
                print_text(&st, o.dry_run);
        return 0;
}

const struct cli_command cli_cmd_gc = {
        .name = "gc",
        .run = run_gc,
        .usage = "[--dry-run] [--json] [--progress|--no-progress]",
        .help = "remove the blobs and directories no named root or store path reaches, and stale temporaries "
                "(--dry-run: only count them); waits for running imports; local stores only",
};
