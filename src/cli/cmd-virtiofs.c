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
};

static int confine(void *userdata) {
        struct confine_ctx *c = userdata;

        return cli_served_confine(c->served, false, c->socket);
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
                {},
        };
        struct cli_served served;
        struct virtiofs_config cfg = { .request_queues = 1, .stop_fd = -1 };
        struct fs_config fcfg = {};
        _cleanup_close_ int sfd = -1;
        unsigned long v;
        sigset_t mask;
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
                default:
                        return -EINVAL;
                }
        }
        if (argc - optind != 1)
                return cli_usage_error("virtiofs", "expected one SOCKET argument");
        cfg.socket_path = argv[optind];

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

        r = cli_served_open(&fcfg, &served);
        if (r < 0)
                return r;
        cfg.stop_fd = sfd;
        struct confine_ctx cc = { .served = &served, .socket = cfg.socket_path };
        cfg.confine = confine;
        cfg.confine_userdata = &cc;
        r = virtiofs_serve(served.fs, &cfg);
        cli_served_close(&served);
        return r;
}

const struct cli_command cli_cmd_virtiofs = {
        .name = "virtiofs",
        .run = run_virtiofs,
        .usage = "SOCKET [--list-root] [--threads N] [--queues N] [--once] [--uid N] [--gid N] [--socket-group G] "
                 "[--sandbox=auto|none] [--debug]",
        .help = "serve the store to VMs as a vhost-user-fs back-end on SOCKET (guest: mount -t virtiofs TAG DIR); "
                "--threads: requests run at once (default: one per CPU, at most 8), --queues: request queues "
                "offered (default 1); the socket is 0600 (0660 with --socket-group); the daemon runs confined to the "
                "store (--sandbox=none: not)",
};
