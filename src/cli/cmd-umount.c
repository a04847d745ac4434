/* castore umount: take down a castore mount (lazily when busy). */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <unistd.h>

#include "cli/cli.h"
#include "transport/fusemount.h"
#include "util/log.h"

static int run_umount(int argc, char **argv) {
        static const struct option opts[] = { CLI_COMMON_LONGOPTS, { "lazy", no_argument, NULL, 'z' }, {} };
        bool lazy = false;
        int opt, r;

        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "z", opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                if (opt == 'z')
                        lazy = true;
                else
                        return -EINVAL;
        }
        if (argc - optind != 1)
                return cli_usage_error("umount", argc - optind < 1 ? "missing MOUNTPOINT" : "too many arguments");
        if (!fusemount_is_castore(argv[optind]))
                return log_error_errno(-EINVAL, "umount: %s: not a castore mount", argv[optind]);
        r = fusemount_unmount(argv[optind], lazy, geteuid() != 0);
        if (r == -EBUSY) {
                log_notice("umount: %s is busy: detaching it; it goes away when its last user does", argv[optind]);
                r = fusemount_unmount(argv[optind], true, geteuid() != 0);
        }
        if (r < 0)
                return log_error_errno(r, "umount: %s: %m", argv[optind]);
        return 0;
}

const struct cli_command cli_cmd_umount = {
        .name = "umount",
        .run = run_umount,
        .usage = "MOUNTPOINT [--lazy]",
        .help = "unmount a castore mount (a busy one is detached lazily)",
};
