/* castore daemon: serves the store's blob, directory and PathInfo services
 * over gRPC (remote/server.h) on one or more addresses until SIGTERM or
 * SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "remote/server.h"
#include "util/log.h"
#include "util/notify.h"
#include "util/sandbox.h"

#define MAX_LISTEN 16

/* Waits for SIGTERM/SIGINT (blocked in every thread) and stops the server. */
static void *signal_thread(void *userdata) {
        sigset_t set;
        int sig;

        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        if (sigwait(&set, &sig) == 0)
                log_info("Signal %d: stopping", sig);
        rpc_server_stop(userdata);
        return NULL;
}

static int parse_mode(const char *s, unsigned *ret) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 8);
        if (errno || end == s || *end || v > 0777)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

/* Confines the daemon to its store (and, to remove them at exit, the
 * directories of its unix sockets): what a client sends is parsed here. */
static int confine(struct cas_store *store, const char *const *listen, size_t n) {
        const char *rw[2] = {}, *rm[MAX_LISTEN + 1] = {};
        _cleanup_free_ char *store_dir = NULL;
        char *dirs[MAX_LISTEN] = {};
        size_t n_rm = 0;
        int r;

        r = cli_store_dir(store, &store_dir);
        if (r < 0)
                return r;
        rw[0] = store_dir;
        for (size_t i = 0; i < n; i++) {
                if (strncmp(listen[i], "grpc+unix://", 12) != 0)
                        continue;
                char *d = strdup(listen[i] + 12), *slash = d ? strrchr(d, '/') : NULL;
                if (!slash) {
                        free(d);
                        continue;
                }
                slash[slash == d] = 0;
                rm[n_rm++] = dirs[i] = d;
        }
        /* accepted connections need the socket calls */
        struct sandbox_config c = { .rw_paths = rw, .remove_paths = rm, .network = true };
        r = sandbox_enter(&c);
        for (size_t i = 0; i < n; i++)
                free(dirs[i]);
        return r;
}

static int serve(const char *const *listen, size_t n, unsigned mode, bool sandbox) {
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        _cleanup_(rpc_server_freep) struct rpc_server *server = NULL;
        struct remote_services svc;
        sigset_t set;
        pthread_t t;
        int r;

        r = cli_store_open(CAS_STORE_CREATE, &store, &pis);
        if (r < 0)
                return r;
        svc = (struct remote_services){ .blobs = store->blobs, .dirs = store->dirs, .pathinfo = pis, .store = store };
        /* block the signals before gRPC starts its threads */
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        r = rpc_server_new(&server);
        if (r >= 0)
                r = remote_server_add_services(server, &svc);
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = rpc_server_listen(server, listen[i], mode);
        if (r >= 0)
                r = rpc_server_start(server);
        if (r >= 0)
                (void) notify_open();
        if (r >= 0 && sandbox)
                r = confine(store, listen, n);
        if (r < 0)
                return r;
        if (pthread_create(&t, NULL, signal_thread, server) != 0)
                return log_error_errno(-EAGAIN, "Cannot start the signal thread");
        for (size_t i = 0; i < n; i++)
                log_notice("Serving %s on %s", store->url, listen[i]);
        (void) notify_send("READY=1\nSTATUS=Serving");
        r = rpc_server_run(server);
        pthread_join(t, NULL);
        return r;
}

static int run_daemon(int argc, char **argv) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                { "listen", required_argument, NULL, 'l' },
                { "socket-mode", required_argument, NULL, 'm' },
                { "sandbox", required_argument, NULL, 's' },
                {},
        };
        const char *listen[MAX_LISTEN];
        unsigned mode = 0600;
        bool sandbox = true;
        size_t n = 0;
        int opt;

        optind = 0;
        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                if (opt == 'l') {
                        if (n == MAX_LISTEN)
                                return cli_usage_error("daemon", "at most %d --listen", MAX_LISTEN);
                        listen[n++] = optarg;
                } else if (opt == 'm') {
                        if (parse_mode(optarg, &mode) < 0)
                                return cli_usage_error("daemon", "bad --socket-mode \"%s\" (octal, e.g. 0660)", optarg);
                } else if (opt == 's') {
                        if (strcmp(optarg, "auto") != 0 && strcmp(optarg, "none") != 0)
                                return cli_usage_error("daemon", "--sandbox takes auto or none");
                        sandbox = strcmp(optarg, "auto") == 0;
                } else
                        return -EINVAL;
        }
        if (optind != argc)
                return cli_usage_error("daemon", "no arguments expected");
        if (n == 0)
                return cli_usage_error("daemon", "missing --listen ADDR");
        return serve(listen, n, mode, sandbox);
}

const struct cli_command cli_cmd_daemon = {
        .name = "daemon",
        .run = run_daemon,
        .usage = "--listen ADDR... [--socket-mode MODE] [--sandbox=auto|none]",
        .help = "serve the store's blob, directory and PathInfo services over gRPC (tvix and snix protocol) on\n"
                "             each ADDR: grpc+unix:///abs/socket (mode 0600 unless --socket-mode) or "
                "grpc+http://HOST:PORT; runs confined to the store (--sandbox=none: not)",
};
