/* castore copy --from URL STOREPATH...: copy store paths (with their
 * closures) from a Nix binary cache, signatures and hashes checked;
 * a summary as text or --json.  The workflow is store/nixcache.c. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "store/nixcache.h"
#include "util/json.h"
#include "util/log.h"
#include "util/progress.h"

struct copy_args {
        const char *from;
        const char *keys;
        bool no_check_sigs, no_closure, json;
        int progress; /* -1: when stderr is a terminal */
        unsigned jobs;
};

static int parse(int argc, char **argv, struct copy_args *a) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                { "from", required_argument, NULL, 'f' },
                { "trusted-public-keys", required_argument, NULL, 'k' },
                { "no-check-sigs", no_argument, NULL, 'N' },
                { "no-closure", no_argument, NULL, 'c' },
                { "json", no_argument, NULL, 'j' },
                { "jobs", required_argument, NULL, 'J' },
                { "progress", no_argument, NULL, 'p' },
                { "no-progress", no_argument, NULL, 'P' },
                {},
        };
        unsigned long n;
        int opt;

        optind = 0;
        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                switch (opt) {
                case 'f':
                        a->from = optarg;
                        break;
                case 'k':
                        a->keys = optarg;
                        break;
                case 'N':
                        a->no_check_sigs = true;
                        break;
                case 'c':
                        a->no_closure = true;
                        break;
                case 'j':
                        a->json = true;
                        break;
                case 'J':
                        if (cli_parse_uint(optarg, 1, NIX_COPY_JOBS_MAX, &n) < 0)
                                return cli_usage_error("copy", "--jobs takes a number from 1 to %d",
                                                       NIX_COPY_JOBS_MAX);
                        a->jobs = (unsigned) n;
                        break;
                case 'p':
                case 'P':
                        a->progress = opt == 'p';
                        break;
                default:
                        return -EINVAL;
                }
        }
        if (!a->from)
                return cli_usage_error("copy", "missing --from URL");
        if (optind >= argc)
                return cli_usage_error("copy", "missing store path");
        return 0;
}

static int parse_paths(char **args, size_t n, struct nix_store_path *ret) {
        for (size_t i = 0; i < n; i++) {
                const char *sub;

                if (nix_store_path_parse(args[i], &ret[i], &sub) < 0 || *sub)
                        return cli_usage_error("copy", "not a store path: %s", args[i]);
        }
        return 0;
}

struct copy_progress {
        struct progress line;
        size_t done;
        uint64_t bytes;
};

static void on_path(void *userdata, const struct nix_store_path *p, bool copied, uint64_t nar_size) {
        struct copy_progress *cp = userdata;

        cp->done++;
        if (copied)
                cp->bytes += nar_size;
        progress_show(&cp->line, "copy: %zu paths, %" PRIu64 " MiB: %s", cp->done, cp->bytes >> 20, p->name);
}

static void print_json(const char *from, const struct nix_copy_stats *st, int r) {
        printf("{\"from\":");
        json_cstring(stdout, from);
        printf(",\"ok\":%s,\"copied\":%zu,\"present\":%zu,\"narBytes\":%" PRIu64 ",\"fileBytes\":%" PRIu64 "}\n",
               r < 0 ? "false" : "true", st->copied, st->present, st->nar_bytes, st->file_bytes);
}

static int run_copy(int argc, char **argv) {
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        _cleanup_(nix_cache_freep) struct nix_cache *cache = NULL;
        _cleanup_free_ struct nix_public_key *keys = NULL;
        _cleanup_free_ struct nix_store_path *paths = NULL;
        struct copy_args a = { .progress = -1 };
        struct copy_progress cp = {};
        struct nix_copy_opts o = {};
        struct nix_copy_stats st = {};
        const char *bad = NULL;
        size_t n_keys = 0, n;
        int r;

        r = parse(argc, argv, &a);
        if (r < 0)
                return r;
        if (a.keys) {
                r = nix_public_keys_parse(a.keys, &keys, &n_keys, &bad);
                if (r == -EINVAL)
                        return cli_usage_error("copy", "invalid public key \"%.*s\" (NAME:BASE64 of 32 bytes)",
                                               (int) strcspn(bad, " \t\n"), bad);
                if (r < 0)
                        return cli_failure(r);
        }
        if (n_keys == 0 && !a.no_check_sigs)
                return cli_usage_error("copy", "no --trusted-public-keys given: refusing to copy unverified "
                                               "paths (pass --no-check-sigs to accept them)");
        n = (size_t) (argc - optind);
        paths = calloc(n, sizeof(*paths));
        if (!paths)
                return cli_failure(-ENOMEM);
        r = parse_paths(argv + optind, n, paths);
        if (r < 0)
                return r;
        r = nix_cache_open(a.from, &cache);
        if (r < 0)
                return cli_failure(r);
        r = cli_store_open(CAS_STORE_CREATE, &store, &pis);
        if (r < 0)
                return cli_failure(r);
        progress_init(&cp.line, a.progress < 0 ? isatty(STDERR_FILENO) : a.progress);
        o = (struct nix_copy_opts){ .keys = keys, .n_keys = n_keys, .no_check_sigs = a.no_check_sigs,
                                    .no_closure = a.no_closure, .jobs = a.jobs, .progress = on_path, .progress_userdata = &cp };
        r = nix_copy_from_cache(store, pis, cache, paths, n, &o, &st);
        progress_done(&cp.line, "copy: %zu paths copied, %zu present, %" PRIu64 " MiB", st.copied, st.present,
                      st.nar_bytes >> 20);
        if (a.json)
                print_json(a.from, &st, r);
        else if (r >= 0)
                printf("%zu paths copied (%" PRIu64 " bytes of NAR), %zu already present\n", st.copied, st.nar_bytes,
                       st.present);
        if (r < 0)
                return cli_failure(r);
        return 0;
}

const struct cli_command cli_cmd_copy = {
        .name = "copy",
        .run = run_copy,
        .usage = "--from URL [--trusted-public-keys \"NAME:KEY ...\"] [--no-check-sigs] [--no-closure] [--jobs N] "
                 "[--json] [--progress|--no-progress] STOREPATH...",
        .help = "Copy store paths and their closures from a Nix binary cache (file:///DIR, http(s)://HOST[/PREFIX])",
};
