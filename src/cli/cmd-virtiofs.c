/* castore virtiofs: serve the store to virtual machines as a vhost-user-fs
 * device back-end on a unix socket (QEMU: -chardev socket,path=SOCKET
 * -device vhost-user-fs-pci,chardev=...,tag=TAG). */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli.h"
#include "fs/fs.h"
#include "transport/virtiofs.h"
#include "util/log.h"

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || end == s || *end || v < min || v > max)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

static int run_virtiofs(int argc, char **argv) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                { "list-root", no_argument, NULL, 'l' },
                { "threads", required_argument, NULL, 't' },
                { "once", no_argument, NULL, '1' },
                { "uid", required_argument, NULL, 'u' },
                { "gid", required_argument, NULL, 'g' },
                { "debug", no_argument, NULL, 'd' },
                {},
        };
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        struct virtiofs_config cfg = { .request_queues = 1, .stop_fd = -1, .ll = { .max_pages = 256 } };
        struct fs_config fcfg = {};
        struct fs *fs = NULL;
        _cleanup_close_ int sfd = -1;
        sigset_t mask;
        int opt, r;

        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                switch (opt) {
                case 'l':
                        fcfg.list_root = true;
                        break;
                case 't':
                        if (parse_uint(optarg, 1, 16, &cfg.request_queues) < 0)
                                return cli_usage_error("virtiofs", "--threads takes 1..16");
                        break;
                case '1':
                        cfg.once = true;
                        break;
                case 'u':
                        if (parse_uint(optarg, 0, UINT32_MAX - 1, &fcfg.uid) < 0)
                                return cli_usage_error("virtiofs", "bad --uid");
                        break;
                case 'g':
                        if (parse_uint(optarg, 0, UINT32_MAX - 1, &fcfg.gid) < 0)
                                return cli_usage_error("virtiofs", "bad --gid");
                        break;
                case 'd':
                        cfg.ll.debug = true;
                        break;
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

        r = cli_store_open(CAS_STORE_READONLY, &store);
        if (r < 0)
                return r;
        struct fs_root_provider roots = { .ops = &fs_root_service_ops, .ctx = store->roots };
        fcfg.roots = &roots;
        fcfg.n_roots = 1;
        r = fs_new(store->blobs, store->dirs, &fcfg, &fs);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the filesystem: %m");

        cfg.stop_fd = sfd;

        r = virtiofs_serve(fs, &cfg);
        fs_free(fs);
        return r;
}

const struct cli_command cli_cmd_virtiofs = {
        .name = "virtiofs",
        .run = run_virtiofs,
        .usage = "SOCKET [--list-root] [--threads N] [--once] [--uid N] [--gid N] [--debug]",
        .help = "serve the store to VMs as a vhost-user-fs back-end on SOCKET (guest: mount -t virtiofs TAG DIR)",
};
