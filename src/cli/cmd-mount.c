/* castore mount: serve the store as a read-only FUSE filesystem on a
 * directory, in the foreground or as a daemon that returns once the mount
 * is ready, confined once set up. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "fs/fs.h"
#include "transport/devfuse.h"
#include "transport/fusemount.h"
#include "util/log.h"

struct confine_ctx {
        struct cli_served *served;
        struct cli_daemon *daemon;   /* NULL in the foreground */
        bool keep_sys_admin;         /* passthrough registers backing files */
};

/* What needs the file system is done before the sandbox shuts it out. */
static int confine(void *userdata) {
        struct confine_ctx *c = userdata;

        if (c->daemon)
                cli_daemon_prepare(c->daemon);
        return cli_served_confine(c->served, c->keep_sys_admin, NULL);
}

static int run_mount(int argc, char **argv) {
        enum { OPT_ALLOW_OTHER = 0x100, OPT_PASSTHROUGH };
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                CLI_FS_LONGOPTS,
                { "threads", required_argument, NULL, 't' },
                { "allow-other", no_argument, NULL, OPT_ALLOW_OTHER },
                { "daemon", no_argument, NULL, 'D' },
                { "passthrough", required_argument, NULL, OPT_PASSTHROUGH },
                { "debug", no_argument, NULL, 'd' },
                {},
        };
        struct cli_served served;
        struct devfuse_options o = { .passthrough = DEVFUSE_PASSTHROUGH_AUTO };
        struct cli_daemon ds = { .ready_fd = -1, .null_fd = -1 };
        struct fs_config fcfg = {};
        char mountpoint[PATH_MAX];
        bool daemon = false;
        unsigned long threads = 0;
        struct stat st;
        int opt, r;

        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, opts, NULL)) >= 0) {
                r = cli_fs_option("mount", opt, optarg, &fcfg);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                switch (opt) {
                case 't':
                        if (cli_parse_uint(optarg, 1, 256, &threads) < 0)
                                return cli_usage_error("mount", "--threads takes 1..256");
                        break;
                case OPT_ALLOW_OTHER:
                        o.allow_other = true;
                        break;
                case 'D':
                        daemon = true;
                        break;
                case OPT_PASSTHROUGH:
                        if (strcmp(optarg, "auto") == 0)
                                o.passthrough = DEVFUSE_PASSTHROUGH_AUTO;
                        else if (strcmp(optarg, "on") == 0)
                                o.passthrough = DEVFUSE_PASSTHROUGH_ON;
                        else if (strcmp(optarg, "off") == 0)
                                o.passthrough = DEVFUSE_PASSTHROUGH_OFF;
                        else
                                return cli_usage_error("mount", "--passthrough takes auto, on or off");
                        break;
                case 'd':
                        o.debug = true;
                        log_set_max_level(LOG_LEVEL_DEBUG);
                        break;
                default:
                        return -EINVAL;
                }
        }
        if (argc - optind != 1)
                return cli_usage_error("mount", argc - optind < 1 ? "missing MOUNTPOINT" : "too many arguments");
        if ((fcfg.uid != 0 || fcfg.gid != 0) && !o.allow_other)
                log_warning("mount: --uid/--gid without --allow-other: only the mounting user can reach the mount");
        if (!realpath(argv[optind], mountpoint) || stat(mountpoint, &st) < 0)
                return log_error_errno(negative_errno(), "mount: %s: %m", argv[optind]);
        if (!S_ISDIR(st.st_mode))
                return log_error_errno(-ENOTDIR, "mount: %s: not a directory", argv[optind]);
        if (fusemount_is_castore(mountpoint))
                return log_error_errno(-EBUSY, "mount: %s: a castore mount is there already", mountpoint);
        o.mountpoint = mountpoint;
        o.threads = threads;

        if (daemon) {
                r = cli_daemonize(&ds);
                if (r != 0)
                        return r > 0 ? 0 : r; /* the parent */
                ds.keep_stderr = o.debug;
                o.ready = cli_daemon_ready;
                o.ready_userdata = &ds;
        }

        /* Passthrough lets the kernel read blob files without castore
         * verifying them: by default only where fs-verity makes the kernel
         * verify them itself. */
        if (o.passthrough == DEVFUSE_PASSTHROUGH_ON) {
                fcfg.passthrough_unverified = true;
                log_warning("mount: --passthrough=on: the kernel reads blob files directly, and bytes of a "
                            "damaged blob are served without castore's verification");
        }
        r = cli_served_open(&fcfg, &served);
        if (r < 0)
                return r;
        if (o.passthrough == DEVFUSE_PASSTHROUGH_AUTO && !cas_blob_service_kernel_verified(served.store->blobs)) {
                log_debug("mount: blob files have no fs-verity: passthrough off, castore verifies every read");
                o.passthrough = DEVFUSE_PASSTHROUGH_OFF;
        }
        struct confine_ctx cc = { .served = &served, .daemon = daemon ? &ds : NULL,
                                  .keep_sys_admin = o.passthrough != DEVFUSE_PASSTHROUGH_OFF };
        o.confine = confine;
        o.confine_userdata = &cc;
        r = devfuse_serve(served.fs, &o);
        cli_served_close(&served);
        cli_daemon_done(&ds);
        return r;
}

const struct cli_command cli_cmd_mount = {
        .name = "mount",
        .run = run_mount,
        .usage = "MOUNTPOINT [--list-root] [--threads N] [--allow-other] [--daemon] [--passthrough=auto|on|off] "
                 "[--sandbox=auto|none] "
                 "[--uid N --gid N] [--debug]",
        .help = "serve the store read-only over FUSE on MOUNTPOINT (--daemon: return once mounted); every read is "
                "verified, except with --passthrough=on, which lets the kernel read blob files unverified "
                "(auto: passthrough only for fs-verity blob files)",
};
