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
static int confine(void *userdata, bool io_uring) {
        struct confine_ctx *c = userdata;

        cli_serving_prepare(c->daemon);
        return cli_served_confine(c->served, c->keep_sys_admin, io_uring, NULL);
}

static void ready(void *userdata) {
        struct confine_ctx *c = userdata;

        cli_serving_ready(c->daemon);
}

struct mount_args {
        struct devfuse_options o;
        struct fs_config fcfg;
        bool daemon;
        bool sloppy;           /* mount.castore -s: unknown -o options are ignored */
        unsigned long threads;
};

enum { OPT_ALLOW_OTHER = 0x100, OPT_PASSTHROUGH, OPT_IO_URING };

/* One option, from the command line or from -o. */
static int mount_option(int opt, const char *arg, struct mount_args *a) {
        int r = cli_fs_option("mount", opt, arg, &a->fcfg);

        if (r != 0)
                return r < 0 ? r : 0;
        switch (opt) {
        case 't':
                if (cli_parse_uint(arg, 1, 256, &a->threads) < 0)
                        return cli_usage_error("mount", "--threads takes 1..256");
                return 0;
        case OPT_ALLOW_OTHER:
                a->o.allow_other = true;
                return 0;
        case 'D':
                a->daemon = true;
                return 0;
        case OPT_PASSTHROUGH:
                if (strcmp(arg, "auto") == 0)
                        a->o.passthrough = DEVFUSE_PASSTHROUGH_AUTO;
                else if (strcmp(arg, "on") == 0)
                        a->o.passthrough = DEVFUSE_PASSTHROUGH_ON;
                else if (strcmp(arg, "off") == 0)
                        a->o.passthrough = DEVFUSE_PASSTHROUGH_OFF;
                else
                        return cli_usage_error("mount", "--passthrough takes auto, on or off");
                return 0;
        case OPT_IO_URING:
                if (strcmp(arg, "auto") == 0)
                        a->o.io_uring = DEVFUSE_IO_URING_AUTO;
                else if (strcmp(arg, "on") == 0)
                        a->o.io_uring = DEVFUSE_IO_URING_ON;
                else if (strcmp(arg, "off") == 0)
                        a->o.io_uring = DEVFUSE_IO_URING_OFF;
                else
                        return cli_usage_error("mount", "--io-uring takes auto, on or off");
                return 0;
        case 'd':
                a->o.debug = true;
                log_set_max_level(LOG_LEVEL_DEBUG);
                return 0;
        }
        return -EINVAL;
}

/* -o names (libfuse's spelling of the long options) */
static const struct {
        const char *name;
        int opt;
        bool arg;
} o_names[] = {
        { "list_root", CLI_OPT_LIST_ROOT, false }, { "threads", 't', true },
        { "allow_other", OPT_ALLOW_OTHER, false }, { "passthrough", OPT_PASSTHROUGH, true },
        { "uid", CLI_OPT_UID, true },              { "gid", CLI_OPT_GID, true },
        { "sandbox", CLI_OPT_SANDBOX, true },      { "debug", 'd', false },
        { "io_uring", OPT_IO_URING, true },
};

/* Generic options mount(8) passes on from fstab: they concern mount(8)
 * itself or mean nothing for a read-only FUSE mount (rw included: the
 * mount is read-only whatever it says). */
static bool generic_option(const char *o) {
        static const char *const names[] = {
                "ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "auto", "noauto", "user",
                "nouser", "users", "owner", "group", "_netdev", "nofail", "defaults", "atime", "noatime",
                "relatime", "norelatime", "strictatime", "nostrictatime", "lazytime", "nolazytime", "diratime",
                "nodiratime", "sync", "async", "dirsync", "silent", "loud", "mand", "nomand", "iversion",
                "noiversion", "bind",
        };
        static const char *const prefixes[] = { "x-", "comment=", "context=", "fscontext=", "defcontext=",
                                                "rootcontext=", "helper=" };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strcmp(o, names[i]) == 0)
                        return true;
        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
                if (strncmp(o, prefixes[i], strlen(prefixes[i])) == 0)
                        return true;
        return false;
}

/* One -o item: NAME or NAME=VALUE. */
static int mount_o_item(char *item, struct mount_args *a) {
        char *eq = strchr(item, '=');

        if (eq)
                *eq = 0;
        for (size_t i = 0; i < ELEMENTSOF(o_names); i++) {
                if (strcmp(item, o_names[i].name) != 0)
                        continue;
                if (o_names[i].arg != !!eq)
                        return cli_usage_error("mount", "-o %s %s", item, eq ? "takes no value" : "needs =VALUE");
                return mount_option(o_names[i].opt, eq ? eq + 1 : NULL, a);
        }
        if (eq)
                *eq = '=';
        if (generic_option(item))
                return 0;
        if (a->sloppy) {
                log_warning("mount: ignoring unknown option \"%s\" (-s)", item);
                return 0;
        }
        return cli_usage_error("mount", "unknown option -o %s", item);
}

/* -o a,b=c,... (as libfuse tools and mount(8) take them) */
static int mount_o(const char *list, struct mount_args *a) {
        _cleanup_free_ char *copy = strdup(list);
        char *save = NULL;
        int r;

        if (!copy)
                return -ENOMEM;
        for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
                r = mount_o_item(item, a);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int mount_serve(const char *where, struct mount_args *a) {
        struct cli_served served;
        struct cli_daemon ds = { .ready_fd = -1, .null_fd = -1 };
        struct devfuse_options *o = &a->o;
        char mountpoint[PATH_MAX];
        struct stat st;
        int r;

        if ((a->fcfg.uid != 0 || a->fcfg.gid != 0) && !o->allow_other)
                log_warning("mount: --uid/--gid without --allow-other: only the mounting user can reach the mount");
        if (!realpath(where, mountpoint) || stat(mountpoint, &st) < 0)
                return log_error_errno(negative_errno(), "mount: %s: %m", where);
        if (!S_ISDIR(st.st_mode))
                return log_error_errno(-ENOTDIR, "mount: %s: not a directory", where);
        if (fusemount_is_castore(mountpoint))
                return log_error_errno(-EBUSY, "mount: %s: a castore mount is there already", mountpoint);
        o->mountpoint = mountpoint;
        o->threads = a->threads;

        if (a->daemon) {
                r = cli_daemonize(&ds);
                if (r != 0)
                        return r > 0 ? 0 : r; /* the parent */
                ds.keep_stderr = o->debug;
        }

        /* Passthrough lets the kernel read blob files without castore
         * verifying them: by default only where fs-verity makes the kernel
         * verify them itself. */
        if (o->passthrough == DEVFUSE_PASSTHROUGH_ON) {
                a->fcfg.passthrough_unverified = true;
                log_warning("mount: --passthrough=on: the kernel reads blob files directly, and bytes of a "
                            "damaged blob are served without castore's verification");
        }
        r = cli_served_open(&a->fcfg, &served);
        if (r < 0)
                return r;
        if (o->passthrough == DEVFUSE_PASSTHROUGH_AUTO && !cas_blob_service_kernel_verified(served.store->blobs)) {
                log_debug("mount: blob files have no fs-verity: passthrough off, castore verifies every read");
                o->passthrough = DEVFUSE_PASSTHROUGH_OFF;
        }
        struct confine_ctx cc = { .served = &served, .daemon = a->daemon ? &ds : NULL,
                                  .keep_sys_admin = o->passthrough != DEVFUSE_PASSTHROUGH_OFF };
        o->confine = confine;
        o->confine_userdata = &cc;
        o->ready = ready;
        o->ready_userdata = &cc;
        r = devfuse_serve(served.fs, o);
        cli_served_close(&served);
        cli_daemon_done(&ds);
        return r;
}

static int run_mount(int argc, char **argv) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                CLI_FS_LONGOPTS,
                { "threads", required_argument, NULL, 't' },
                { "allow-other", no_argument, NULL, OPT_ALLOW_OTHER },
                { "daemon", no_argument, NULL, 'D' },
                { "passthrough", required_argument, NULL, OPT_PASSTHROUGH },
                { "io-uring", required_argument, NULL, OPT_IO_URING },
                { "debug", no_argument, NULL, 'd' },
                { "options", required_argument, NULL, 'o' },
                {},
        };
        struct mount_args a = { .o.passthrough = DEVFUSE_PASSTHROUGH_AUTO };
        int opt, r;

        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "o:", opts, NULL)) >= 0) {
                r = opt == 'o' ? mount_o(optarg, &a) : mount_option(opt, optarg, &a);
                if (r < 0)
                        return r;
        }
        if (argc - optind != 1)
                return cli_usage_error("mount", argc - optind < 1 ? "missing MOUNTPOINT" : "too many arguments");
        return mount_serve(argv[optind], &a);
}

/* mount.castore STORE MOUNTPOINT [-sfnv] [-o OPTIONS] [-t TYPE], as
 * mount(8) runs it for "mount -t castore" and fstab lines: mounts in the
 * background (like castore mount --daemon) and returns once it serves. */
int cli_mount_helper(int argc, char **argv) {
        struct mount_args a = { .o.passthrough = DEVFUSE_PASSTHROUGH_AUTO, .daemon = true };
        const char *pos[2];
        const char *o = NULL;
        bool fake = false;
        int n = 0, opt;

        /* options may follow the two arguments: parse them in order */
        while (optind < argc) {
                opt = getopt(argc, argv, "+sfnvo:t:N:h");
                if (opt < 0 && optind >= argc)
                        break; /* after "--" */
                if (opt < 0) {
                        if (n == 2)
                                return cli_usage_error("mount.castore", "too many arguments");
                        pos[n++] = argv[optind++];
                        continue;
                }
                switch (opt) {
                case 's':
                        a.sloppy = true;
                        break;
                case 'f':
                        fake = true;
                        break;
                case 'v':
                        log_set_max_level(LOG_LEVEL_INFO);
                        break;
                case 'o':
                        o = optarg;
                        break;
                case 'n': /* no mtab: there is none */
                case 't': /* castore, or castore.SUBTYPE */
                case 'N':
                        break;
                case 'h':
                        printf("Usage: mount.castore STORE MOUNTPOINT [-sfnv] [-o OPTIONS]\n\n"
                               "Mounts a castore store (a directory, grpc+unix:///PATH or grpc+http://HOST:PORT)\n"
                               "read-only on MOUNTPOINT in the background, for mount -t castore and /etc/fstab.\n"
                               "Options: list_root, threads=N, passthrough=auto|on|off, io_uring=auto|on|off,\n"
                               "allow_other, uid=N, gid=N, sandbox=auto|none, debug; mount(8)'s generic options are\n"
                               "ignored.  See mount.castore(8).\n");
                        return 0;
                default:
                        return -EINVAL;
                }
        }
        if (n != 2)
                return cli_usage_error("mount.castore", "expected STORE MOUNTPOINT");
        if (o) {
                int r = mount_o(o, &a);
                if (r < 0)
                        return r;
        }
        if (fake)
                return 0;
        cli_set_store_url(pos[0]);
        return mount_serve(pos[1], &a);
}

const struct cli_command cli_cmd_mount = {
        .name = "mount",
        .run = run_mount,
        .usage = "MOUNTPOINT [--list-root] [--threads N] [--allow-other] [--daemon] [--passthrough=auto|on|off] "
                 "[--io-uring=auto|on|off] [--sandbox=auto|none] "
                 "[--uid N --gid N] [--debug] [-o|--options OPT,...]",
        .help = "serve the store read-only over FUSE on MOUNTPOINT (--daemon: return once mounted); every read is "
                "verified, except with --passthrough=on, which lets the kernel read blob files unverified "
                "(auto: passthrough only for fs-verity blob files); --io-uring=auto takes requests over FUSE "
                "io_uring where the kernel offers it (fuse.enable_uring=Y), on insists, off reads /dev/fuse; "
                "-o takes the same as list_root, threads=N, allow_other, passthrough=M, io_uring=M, uid=N, gid=N, "
                "sandbox=M, debug, and ignores mount(8)'s generic options",
};
