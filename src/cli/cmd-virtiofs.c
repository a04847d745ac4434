/* castore virtiofs: serve the store to virtual machines as a vhost-user-fs
 * device back-end on a unix socket (QEMU: -chardev socket,path=SOCKET
 * -device vhost-user-fs-pci,chardev=...,tag=TAG). */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli/cli.h"
#include "fs/fs.h"
#include "transport/virtiofs.h"
#include "util/log.h"

struct confine_ctx {
        struct cli_served *served;
        const char *socket;
        struct cli_daemon *daemon; /* NULL in the foreground */
};

static int confine(void *userdata) {
        struct confine_ctx *c = userdata;

        cli_serving_prepare(c->daemon);
        return cli_served_confine(c->served, false, false, c->socket);
}

static void ready(void *userdata) {
        struct confine_ctx *c = userdata;

        cli_serving_ready(c->daemon);
}

/* --print-capabilities: the vhost-user back-end description QEMU's
 * docs/interop/vhost-user.rst asks of back-end programs.  No features: no
 * migration, and none of virtiofsd's options. */
static int print_capabilities(void) {
        printf("{\n  \"type\": \"fs\",\n  \"features\": []\n}\n");
        return 0;
}

/* A listening socket handed over: --fd N (vhost-user's convention), or
 * systemd's socket activation (LISTEN_PID, LISTEN_FDS: fd 3). */
static int listen_fd_from_env(void) {
        const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
        unsigned long p, n;

        if (!pid || !fds || cli_parse_uint(pid, 1, INT32_MAX, &p) < 0 || (pid_t) p != getpid() ||
            cli_parse_uint(fds, 1, 1, &n) < 0)
                return -1;
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        return 3;
}

/* The socket: the argument, --socket-path, --fd or systemd's; one only. */
static int pick_socket(int n_args, char **args, bool daemon, struct virtiofs_config *cfg) {
        if (n_args > 1 || (n_args == 1 && cfg->socket_path))
                return cli_usage_error("virtiofs", "too many arguments");
        if (n_args == 1)
                cfg->socket_path = args[0];
        if (cfg->listen_fd < 0 && !cfg->socket_path)
                cfg->listen_fd = listen_fd_from_env();
        if (!cfg->socket_path && cfg->listen_fd < 0)
                return cli_usage_error("virtiofs", "expected one SOCKET argument (or --socket-path, --fd)");
        if (cfg->socket_path && cfg->listen_fd >= 0)
                return cli_usage_error("virtiofs", "a SOCKET path and --fd: give one");
        if (daemon && cfg->listen_fd >= 0)
                return cli_usage_error("virtiofs", "--daemon with a socket handed over: its owner waits already");
        return 0;
}

/* Opens the store and serves it until SIGINT/SIGTERM; d: the daemon's
 * state after cli_daemonize, or NULL in the foreground. */
static int serve(struct virtiofs_config *cfg, struct fs_config *fcfg, struct cli_daemon *d) {
        struct cli_served served;
        _cleanup_close_ int sfd = -1;
        sigset_t mask;
        int r;

        /* SIGINT/SIGTERM arrive through a signalfd the server polls.  Block
         * them before any thread exists (the store and the filesystem may
         * start some): every thread inherits the mask. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        sfd = signalfd(-1, &mask, SFD_CLOEXEC);
        if (sfd < 0)
                return log_error_errno(negative_errno(), "signalfd: %m");

        r = cli_served_open(fcfg, &served);
        if (r < 0)
                return r;
        cfg->stop_fd = sfd;
        struct confine_ctx cc = { .served = &served, .socket = cfg->socket_path, .daemon = d };
        cfg->confine = confine;
        cfg->confine_userdata = &cc;
        cfg->ready = ready;
        r = virtiofs_serve(served.fs, cfg);
        cli_served_close(&served);
        return r;
}

static int run_virtiofs(int argc, char **argv) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                CLI_FS_LONGOPTS,
                { "threads", required_argument, NULL, 't' },
                { "queues", required_argument, NULL, 'Q' },
                { "once", no_argument, NULL, '1' },
                { "debug", no_argument, NULL, 'd' },
                { "socket-group", required_argument, NULL, 'G' },
                { "daemon", no_argument, NULL, 'D' },
                { "print-capabilities", no_argument, NULL, 'P' },
                { "socket-path", required_argument, NULL, 'p' },
                { "fd", required_argument, NULL, 'F' },
                {},
        };
        struct virtiofs_config cfg = { .request_queues = 1, .stop_fd = -1, .listen_fd = -1 };
        struct cli_daemon ds = { .ready_fd = -1, .null_fd = -1 };
        struct fs_config fcfg = {};
        bool daemon = false;
        unsigned long v;
        int opt, r;

        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, opts, NULL)) >= 0) {
                r = cli_fs_option("virtiofs", opt, optarg, &fcfg);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                switch (opt) {
                case 't':
                        if (cli_parse_uint(optarg, 1, 64, &v) < 0)
                                return cli_usage_error("virtiofs", "--threads takes 1..64");
                        cfg.threads = v;
                        break;
                case 'Q':
                        if (cli_parse_uint(optarg, 1, 16, &v) < 0)
                                return cli_usage_error("virtiofs", "--queues takes 1..16");
                        cfg.request_queues = v;
                        break;
                case '1':
                        cfg.once = true;
                        break;
                case 'd':
                        cfg.ll.debug = true;
                        break;
                case 'G': {
                        struct group *g = getgrnam(optarg);

                        if (g)
                                cfg.socket_gid = g->gr_gid;
                        else if (cli_parse_uint(optarg, 0, UINT32_MAX - 1, &v) == 0)
                                cfg.socket_gid = (gid_t) v;
                        else
                                return cli_usage_error("virtiofs", "--socket-group: no group \"%s\"", optarg);
                        cfg.socket_group = true;
                        break;
                }
                case 'D':
                        daemon = true;
                        break;
                case 'P':
                        return print_capabilities();
                case 'p':
                        cfg.socket_path = optarg;
                        break;
                case 'F':
                        if (cli_parse_uint(optarg, 0, INT32_MAX, &v) < 0)
                                return cli_usage_error("virtiofs", "bad --fd \"%s\"", optarg);
                        cfg.listen_fd = (int) v;
                        break;
                default:
                        return -EINVAL;
                }
        }
        r = pick_socket(argc - optind, argv + optind, daemon, &cfg);
        if (r < 0)
                return r;
        if (daemon) {
                /* before the signalfd and the store: the child has its own */
                r = cli_daemonize(&ds);
                if (r != 0)
                        return r > 0 ? 0 : r; /* the parent */
                ds.keep_stderr = cfg.ll.debug;
        }
        r = serve(&cfg, &fcfg, daemon ? &ds : NULL);
        cli_daemon_done(&ds);
        return r;
}

int cli_virtiofs_backend(int argc, char **argv) {
        optind = 0;
        return run_virtiofs(argc, argv);
}

const struct cli_command cli_cmd_virtiofs = {
        .name = "virtiofs",
        .run = run_virtiofs,
        .usage = "SOCKET|--socket-path SOCKET|--fd N [--list-root] [--threads N] [--queues N] [--once] [--uid N] "
                 "[--gid N] [--socket-group G] [--daemon] [--sandbox=auto|none] [--debug] | --print-capabilities",
        .help = "serve the store to VMs as a vhost-user-fs back-end on SOCKET (guest: mount -t virtiofs TAG DIR); "
                "--threads: requests run at once (default: one per CPU, at most 8), --queues: request queues "
                "offered (default 1); the socket is 0600 (0660 with --socket-group); a second daemon on a served "
                "socket is refused; --fd N: serve a listening socket handed over (or by systemd socket activation); "
                "--daemon: return once the socket listens; --print-capabilities: the vhost-user back-end JSON; the "
                "daemon runs confined to the store (--sandbox=none: not)",
};
