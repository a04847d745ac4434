/* castore copy --from URL / --to URL STOREPATH...: copy store paths (with
 * their closures) from a Nix binary cache, signatures and hashes checked,
 * or to one, NARs compressed and narinfos signed; a summary as text or
 * --json.  The workflows are store/nixcache.c and store/nixcache_write.c. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "store/compress.h"
#include "store/nixcache.h"
#include "util/json.h"
#include "util/log.h"
#include "util/progress.h"

#define SIGN_KEYS_MAX 16

struct copy_args {
        const char *from, *to;
        const char *keys;
        const char *sign_keys[SIGN_KEYS_MAX];
        size_t n_sign_keys;
        const char *compression;
        bool no_check_sigs, no_closure, json, nar_listing;
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
                { "json", no_argument, NULL, 'x' },
                { "jobs", required_argument, NULL, 'j' },
                { "progress", no_argument, NULL, 'p' },
                { "no-progress", no_argument, NULL, 'P' },
                { "to", required_argument, NULL, 't' },
                { "sign-key", required_argument, NULL, 's' },
                { "compression", required_argument, NULL, 'z' },
                { "write-nar-listing", no_argument, NULL, 'l' },
                {},
        };
        unsigned long n;
        int opt;

        optind = 0;
        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "j:", opts, NULL)) >= 0) {
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
                case 'x':
                        a->json = true;
                        break;
                case 'j':
                        if (cli_parse_uint(optarg, 1, NIX_COPY_JOBS_MAX, &n) < 0)
                                return cli_usage_error("copy", "--jobs takes a number from 1 to %d",
                                                       NIX_COPY_JOBS_MAX);
                        a->jobs = (unsigned) n;
                        break;
                case 'p':
                case 'P':
                        a->progress = opt == 'p';
                        break;
                case 't':
                        a->to = optarg;
                        break;
                case 's':
                        if (a->n_sign_keys == SIGN_KEYS_MAX)
                                return cli_usage_error("copy", "at most %d --sign-key", SIGN_KEYS_MAX);
                        a->sign_keys[a->n_sign_keys++] = optarg;
                        break;
                case 'z':
                        a->compression = optarg;
                        break;
                case 'l':
                        a->nar_listing = true;
                        break;
                default:
                        return -EINVAL;
                }
        }
        if (!a->from == !a->to)
                return cli_usage_error("copy", "give either --from URL or --to URL");
        if (a->from && (a->n_sign_keys || a->compression || a->nar_listing))
                return cli_usage_error("copy", "--sign-key, --compression and --write-nar-listing go with --to");
        if (a->to && (a->keys || a->no_check_sigs))
                return cli_usage_error("copy", "--trusted-public-keys and --no-check-sigs go with --from");
        if (optind >= argc)
                return cli_usage_error("copy", "missing store path");
        return 0;
}

/* The STOREPATH arguments after the options. */
static int parse_paths(int argc, char **argv, struct nix_store_path **ret, size_t *ret_n) {
        size_t n = (size_t) (argc - optind);
        _cleanup_free_ struct nix_store_path *p = calloc(n, sizeof(*p));

        if (!p)
                return cli_failure(-ENOMEM);
        for (size_t i = 0; i < n; i++) {
                const char *sub;

                if (nix_store_path_parse(argv[optind + i], &p[i], &sub) < 0 || *sub)
                        return cli_usage_error("copy", "not a store path: %s", argv[optind + i]);
        }
        *ret = TAKE_PTR(p);
        *ret_n = n;
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

static void print_json(const char *dir, const char *url, const struct nix_copy_stats *st, int r) {
        printf("{\"%s\":", dir);
        json_cstring(stdout, url);
        printf(",\"ok\":%s,\"copied\":%zu,\"present\":%zu,\"narBytes\":%" PRIu64 ",\"fileBytes\":%" PRIu64 "}\n",
               r < 0 ? "false" : "true", st->copied, st->present, st->nar_bytes, st->file_bytes);
}

static int run_copy_from(const struct copy_args *args, int argc, char **argv) {
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        _cleanup_(nix_cache_freep) struct nix_cache *cache = NULL;
        _cleanup_free_ struct nix_public_key *keys = NULL;
        _cleanup_free_ struct nix_store_path *paths = NULL;
        struct copy_args a = *args;
        struct copy_progress cp = {};
        struct nix_copy_opts o = {};
        struct nix_copy_stats st = {};
        const char *bad = NULL;
        size_t n_keys = 0, n;
        int r;

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
        r = parse_paths(argc, argv, &paths, &n);
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
                print_json("from", nix_cache_url(cache), &st, r);
        else if (r >= 0)
                printf("%zu paths copied (%" PRIu64 " bytes of NAR), %zu already present\n", st.copied, st.nar_bytes,
                       st.present);
        if (r < 0)
                return cli_failure(r);
        return 0;
}

/* The --to settings: flags win over the URL's query parameters. */
struct to_settings {
        char *compression;
        char *url_key;
        bool nar_listing;
};

static void to_settings_free(struct to_settings *t) {
        free(t->compression);
        free(t->url_key);
}

static int to_settings_get(const struct copy_args *a, struct to_settings *ret) {
        _cleanup_free_ char *listing = NULL;
        int r;

        r = nix_cache_url_param(a->to, "compression", &ret->compression);
        if (r < 0 && r != -ENOENT)
                return r;
        if (a->compression) {
                free(ret->compression);
                ret->compression = strdup(a->compression);
                if (!ret->compression)
                        return -ENOMEM;
        }
        if (ret->compression && !nix_compress_method_valid(ret->compression))
                return cli_usage_error("copy", "unknown compression \"%s\" (none, xz, zstd, bzip2, br)",
                                       ret->compression);
        r = nix_cache_url_param(a->to, "secret-key", &ret->url_key);
        if (r < 0 && r != -ENOENT)
                return r;
        r = nix_cache_url_param(a->to, "write-nar-listing", &listing);
        if (r < 0 && r != -ENOENT)
                return r;
        ret->nar_listing = a->nar_listing || (listing && (strcmp(listing, "1") == 0 || strcmp(listing, "true") == 0));
        return 0;
}

/* Loads every signing key: --sign-key FILE..., or else the URL's
 * secret-key.  A key that cannot be used is a usage error. */
static int load_sign_keys(const struct copy_args *a, const char *url_key, struct nix_secret_key *keys,
                          size_t *ret_n) {
        size_t n = 0;
        int r;

        for (size_t i = 0; i < a->n_sign_keys; i++) {
                r = nix_secret_key_load(a->sign_keys[i], &keys[n++]);
                if (r < 0)
                        return r == -ENOMEM ? r : -EINVAL;
        }
        if (n == 0 && url_key) {
                r = nix_secret_key_load(url_key, &keys[n++]);
                if (r < 0)
                        return r == -ENOMEM ? r : -EINVAL;
        }
        *ret_n = n;
        return 0;
}

static int run_copy_to(const struct copy_args *a, int argc, char **argv) {
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        _cleanup_(nix_cache_freep) struct nix_cache *cache = NULL;
        _cleanup_free_ struct nix_store_path *paths = NULL;
        _cleanup_(to_settings_free) struct to_settings t = {};
        struct nix_secret_key keys[SIGN_KEYS_MAX];
        struct copy_progress cp = {};
        struct nix_copy_to_opts o;
        struct nix_copy_stats st = {};
        size_t n_keys = 0, n;
        int r;

        r = to_settings_get(a, &t);
        if (r < 0)
                return r;
        r = load_sign_keys(a, t.url_key, keys, &n_keys);
        if (r < 0)
                goto out;
        r = parse_paths(argc, argv, &paths, &n);
        if (r < 0)
                goto out;
        r = cli_store_open(0, &store, &pis);
        if (r < 0)
                goto fail;
        r = nix_cache_open_write(a->to, &cache);
        if (r < 0)
                goto fail;
        progress_init(&cp.line, a->progress < 0 ? isatty(STDERR_FILENO) : a->progress);
        o = (struct nix_copy_to_opts){ .compression = t.compression, .keys = keys, .n_keys = n_keys,
                                       .write_nar_listing = t.nar_listing, .no_closure = a->no_closure,
                                       .jobs = a->jobs, .progress = on_path, .progress_userdata = &cp };
        r = nix_copy_to_cache(store, pis, cache, paths, n, &o, &st);
        progress_done(&cp.line, "copy: %zu paths written, %zu present, %" PRIu64 " MiB", st.copied, st.present,
                      st.nar_bytes >> 20);
        if (a->json)
                print_json("to", nix_cache_url(cache), &st, r);
        else if (r >= 0)
                printf("%zu paths written (%" PRIu64 " bytes of NAR, %" PRIu64 " in files), %zu already present\n",
                       st.copied, st.nar_bytes, st.file_bytes, st.present);
fail:
        r = cli_failure(r);
out:
        explicit_bzero(keys, sizeof(keys));
        return r;
}

static int run_copy(int argc, char **argv) {
        struct copy_args a = { .progress = -1 };
        int r;

        r = parse(argc, argv, &a);
        if (r < 0)
                return r;
        return a.from ? run_copy_from(&a, argc, argv) : run_copy_to(&a, argc, argv);
}

const struct cli_command cli_cmd_copy = {
        .name = "copy",
        .run = run_copy,
        .usage = "--from URL [--trusted-public-keys \"NAME:KEY ...\"] [--no-check-sigs] [--no-closure] [-j|--jobs N] "
                 "[--json] [--progress|--no-progress] STOREPATH...\n"
                 "       copy --to URL [--sign-key FILE]... [--compression none|xz|zstd|bzip2|br] "
                 "[--write-nar-listing] [--no-closure] [-j|--jobs N] [--json] [--progress|--no-progress] STOREPATH...",
        .help = "Copy store paths and their closures from or to a Nix binary cache (file:///DIR, "
                "http(s)://HOST[/PREFIX])",
};
