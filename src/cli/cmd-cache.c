/* castore cache serve: the store as a Nix binary cache over HTTP
 * (store/cache_serve.h, transport/httpcache.h) until SIGTERM or SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "store/cache_serve.h"
#include "transport/httpcache.h"
#include "util/log.h"
#include "util/notify.h"
#include "util/sandbox.h"

#define SIGN_KEYS_MAX 16

struct serve_args {
        const char *listen;
        const char *sign_key_files[SIGN_KEYS_MAX];
        size_t n_sign_keys;
        unsigned long priority;
        bool allow_uploads;
        const char *upload_keys;
        bool no_sandbox;
};

static int parse(int argc, char **argv, struct serve_args *a) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                { "listen", required_argument, NULL, 'l' },
                { "sign-key", required_argument, NULL, 'k' },
                { "priority", required_argument, NULL, 'p' },
                { "allow-uploads", no_argument, NULL, 'u' },
                { "upload-trusted-public-keys", required_argument, NULL, 'K' },
                { "sandbox", required_argument, NULL, 's' },
                {},
        };
        int opt;

        optind = 0;
        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                switch (opt) {
                case 'l':
                        a->listen = optarg;
                        break;
                case 'k':
                        if (a->n_sign_keys == SIGN_KEYS_MAX)
                                return cli_usage_error("cache serve", "at most %d --sign-key", SIGN_KEYS_MAX);
                        a->sign_key_files[a->n_sign_keys++] = optarg;
                        break;
                case 'p':
                        if (cli_parse_uint(optarg, 0, 1000000, &a->priority) < 0)
                                return cli_usage_error("cache serve", "--priority takes a number from 0 to 1000000");
                        break;
                case 'u':
                        a->allow_uploads = true;
                        break;
                case 'K':
                        a->upload_keys = optarg;
                        break;
                case 's':
                        if (strcmp(optarg, "auto") != 0 && strcmp(optarg, "none") != 0)
                                return cli_usage_error("cache serve", "--sandbox takes auto or none");
                        a->no_sandbox = strcmp(optarg, "none") == 0;
                        break;
                default:
                        return -EINVAL;
                }
        }
        if (optind != argc)
                return cli_usage_error("cache serve", "no arguments expected");
        if (!a->listen)
                return cli_usage_error("cache serve", "missing --listen HOST:PORT");
        if (a->upload_keys && !a->allow_uploads)
                return cli_usage_error("cache serve", "--upload-trusted-public-keys needs --allow-uploads");
        return 0;
}

/* Waits for SIGTERM/SIGINT, blocked in every thread since before any
 * started, expiring stale uploads every minute meanwhile. */
static void wait_for_stop(struct nix_serve *s, const sigset_t *set) {
        struct timespec minute = { .tv_sec = 60 };
        int sig;

        for (;;) {
                sig = sigtimedwait(set, NULL, &minute);
                if (sig > 0) {
                        log_info("Signal %d: stopping", sig);
                        return;
                }
                if (errno != EAGAIN && errno != EINTR) {
                        log_error_errno(-errno, "Cannot wait for signals: %m");
                        return;
                }
                nix_serve_expire(s);
        }
}

/* Confines the server to its store (read, and written by uploads and
 * outboard repairs) before any connection is served: requests are parsed
 * here.  The listening socket is bound already; connections are accepted. */
static int confine(struct cas_store *store) {
        char *rw[CLI_STORE_PATHS_MAX];
        int r;

        r = cli_store_paths(store, rw);
        if (r < 0)
                return r;
        /* network: shared services (gRPC, PostgreSQL) are reached by connecting */
        r = sandbox_enter(&(struct sandbox_config){ .rw_paths = (const char *const *) rw,
                                                    .network = cli_store_is_shared(), .socket_options = true });
        cli_store_paths_free(rw);
        return r;
}

static int serve(const struct serve_args *a, const struct nix_secret_key *sign, const struct nix_public_key *up,
                 size_t n_up) {
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        _cleanup_(nix_serve_freep) struct nix_serve *s = NULL;
        _cleanup_(httpcache_stopp) struct httpcache *h = NULL;
        struct nix_serve_config cfg = { .sign_keys = sign, .n_sign_keys = a->n_sign_keys,
                                        .priority = (unsigned) a->priority, .allow_uploads = a->allow_uploads,
                                        .upload_keys = up, .n_upload_keys = n_up };
        sigset_t set;
        int r;

        /* blocked before any thread starts (the store's too): sigwait takes them */
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN); /* a client gone is EPIPE on its connection only */
        r = cli_store_open(a->allow_uploads ? CAS_STORE_CREATE : 0, &store, &pis);
        if (r < 0)
                return r;
        r = nix_serve_new(store, pis, &cfg, &s);
        if (r < 0)
                return r;
        cli_serving_prepare(NULL);
        r = httpcache_new(s, a->listen, &h);
        if (r >= 0 && !a->no_sandbox)
                r = confine(store);
        if (r >= 0)
                r = httpcache_start(h);
        if (r < 0)
                return r;
        log_notice("Serving %s as a Nix binary cache on %s%s", store->url, httpcache_url(h),
                   a->allow_uploads ? " (uploads allowed)" : "");
        cli_serving_ready(NULL);
        wait_for_stop(s, &set);
        (void) notify_send("STOPPING=1");
        return 0;
}

static int run_serve(int argc, char **argv) {
        _cleanup_free_ struct nix_public_key *up = NULL;
        struct nix_secret_key sign[SIGN_KEYS_MAX];
        struct serve_args a = { .priority = 30 };
        const char *bad = NULL;
        size_t n_up = 0;
        int r;

        r = parse(argc, argv, &a);
        if (r < 0)
                return r;
        for (size_t i = 0; i < a.n_sign_keys; i++) {
                r = nix_secret_key_load(a.sign_key_files[i], &sign[i]);
                if (r < 0)
                        return cli_failure(r);
        }
        if (a.upload_keys) {
                r = nix_public_keys_parse(a.upload_keys, &up, &n_up, &bad);
                if (r == -EINVAL)
                        return cli_usage_error("cache serve", "invalid public key \"%.*s\" (NAME:BASE64 of 32 bytes)",
                                               (int) strcspn(bad, " \t\n"), bad);
                if (r < 0)
                        return cli_failure(r);
        }
        r = serve(&a, sign, up, n_up);
        explicit_bzero(sign, sizeof(sign));
        return r < 0 ? cli_failure(r) : 0;
}

static int run_cache(int argc, char **argv) {
        if (argc < 2)
                return cli_usage_error("cache", "missing subcommand (serve)");
        if (strcmp(argv[1], "serve") == 0)
                return run_serve(argc - 1, argv + 1);
        return cli_usage_error("cache", "unknown subcommand \"%s\" (serve)", argv[1]);
}

const struct cli_command cli_cmd_cache = {
        .name = "cache",
        .run = run_cache,
        .usage = "serve --listen HOST:PORT [--sign-key FILE]... [--priority N] [--allow-uploads "
                 "[--upload-trusted-public-keys \"NAME:KEY ...\"]] [--sandbox=auto|none]",
        .help = "serve the store as a Nix binary cache over HTTP: narinfos signed with each --sign-key, NARs\n"
                "             rendered from the store (Range supported); with --allow-uploads, nix copy --to http://\n"
                "             uploads are checked and registered; runs confined to the store (--sandbox=none: not)",
};
