/* castore: the command-line entry point.  Parses global options, finds
 * the subcommand and maps its -errno result to an exit code. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli/cli.h"
#include "remote/services.h"
#include "util/io.h"
#include "util/log.h"
#include "util/toml.h"

static const char *store_url; /* set once while parsing options */
/* --blob-service-addr, --directory-service-addr, --path-info-service-addr,
 * --cache: set while parsing options */
static const char *service_addr[3], *cache_dir, *composition;
static const char *const service_env[3] = { "BLOB_SERVICE_ADDR", "DIRECTORY_SERVICE_ADDR", "PATH_INFO_SERVICE_ADDR" };
static char default_url[4096];

const char *cli_store_url(void) {
        const char *e;

        if (store_url)
                return store_url;
        e = getenv("CASTORE_STORE");
        if (e && *e)
                return e;
        if (geteuid() == 0)
                return CLI_SYSTEM_STORE; /* the system's store, as the units use it */
        e = getenv("XDG_DATA_HOME");
        if (e && *e)
                snprintf(default_url, sizeof(default_url), "%s/castore", e);
        else
                snprintf(default_url, sizeof(default_url), "%s/.local/share/castore",
                         getenv("HOME") ? getenv("HOME") : "/root");
        return default_url;
}

void cli_set_store_url(const char *url) {
        store_url = url;
}

static const char *addr_of(int i) {
        const char *e = getenv(service_env[i]);
        return service_addr[i] ? service_addr[i] : e && *e ? e : NULL;
}

bool cli_store_is_remote(void) {
        for (int i = 0; i < 3; i++)
                if (remote_url_is_grpc(addr_of(i)) || nix_pathinfo_url_is_cache(addr_of(i)))
                        return true;
        return remote_url_is_grpc(cli_store_url());
}

static int composition_addrs(struct remote_addrs *ret);

bool cli_store_is_shared(void) {
        struct remote_addrs a = {};

        if (cli_store_is_remote())
                return true;
        if (composition && composition_addrs(&a) >= 0 &&
            (remote_url_is_grpc(a.blobs) || remote_url_is_grpc(a.dirs) || remote_url_is_pg(a.dirs) ||
             remote_url_is_pg(a.pathinfo)))
                return true;
        for (int i = 0; i < 3; i++)
                if (remote_url_is_pg(addr_of(i)))
                        return true;
        return remote_url_is_pg(cli_store_url());
}

/* --store-composition FILE: the addresses it describes (the parsed file
 * stays for the process: the addresses are its strings). */
static int composition_addrs(struct remote_addrs *ret) {
        static struct toml_table *doc;
        _cleanup_free_ uint8_t *text = NULL;
        size_t len;
        char err[256] = "";
        int r;

        if (!doc) {
                _cleanup_close_ int fd = open(composition, O_RDONLY | O_CLOEXEC);
                r = fd < 0 ? -errno : read_file_fd(fd, 1 << 20, &text, &len);
                if (r < 0)
                        return log_error_errno(r, "Cannot read %s: %m", composition);
                r = toml_parse((const char *) text, len, &doc, err, sizeof(err));
                if (r < 0)
                        return log_error_errno(r, "%s: %s", composition, err);
        }
        r = remote_addrs_from_composition(doc, ret, err, sizeof(err));
        if (r < 0)
                return log_error_errno(r, "%s: %s", composition, err);
        return 0;
}

int cli_store_open(unsigned flags, struct cas_store **ret, struct nix_pathinfo_service **ret_pathinfo) {
        const char *e = getenv("CASTORE_CACHE");
        struct remote_addrs a = {
                .store = cli_store_url(),
                .blobs = addr_of(0),
                .dirs = addr_of(1),
                .pathinfo = addr_of(2),
                .cache = cache_dir ? cache_dir : e && *e ? e : NULL,
                .prefetch = flags & CLI_STORE_SERVING,
        };
        int r;

        if (composition) {
                r = composition_addrs(&a);
                if (r < 0)
                        return r;
        }
        r = remote_open(&a, flags & ~CLI_STORE_SERVING, ret, ret_pathinfo);

        if (r == -ENOENT)
                return r; /* cas_store_open said which store is missing */
        if (r < 0) {
                _cleanup_free_ char *shown = remote_url_masked(a.store);
                return log_error_errno(r, "Failed to open store %s: %m", shown ? shown : "?");
        }
        return 0;
}

bool cli_common_option(int opt, const char *arg) {
        switch (opt) {
        case 'S':
                cli_set_store_url(arg);
                return true;
        case CLI_OPT_BLOB_ADDR:
        case CLI_OPT_DIR_ADDR:
        case CLI_OPT_PATHINFO_ADDR:
                service_addr[opt - CLI_OPT_BLOB_ADDR] = arg;
                return true;
        case CLI_OPT_CACHE:
                cache_dir = arg;
                return true;
        case CLI_OPT_COMPOSITION:
                composition = arg;
                return true;
        case 'v':
                log_set_max_level(log_get_max_level() < LOG_LEVEL_INFO ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG);
                return true;
        case 'q':
                log_set_max_level(LOG_LEVEL_ERR);
                return true;
        }
        return false;
}

int cli_parse_common_only(int argc, char **argv) {
        static const struct option opts[] = { CLI_COMMON_LONGOPTS, {} };
        int opt;

        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, opts, NULL)) >= 0)
                if (!cli_common_option(opt, optarg))
                        return -EINVAL;
        return optind;
}

int cli_begin(const char *cmd, int argc, char **argv, const char *missing, unsigned store_flags,
              struct cas_store **ret_store, struct nix_pathinfo_service **ret_pathinfo) {
        int r, first;

        first = cli_parse_common_only(argc, argv);
        if (first < 0)
                return first;
        if (first >= argc)
                return cli_usage_error(cmd, "missing %s", missing);
        r = cli_store_open(store_flags, ret_store, ret_pathinfo);
        return r < 0 ? r : first;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_error("%s: %s (see \"castore help\")", cmd, msg);
        return -EINVAL;
}

/* Deep trees keep a directory fd open per level (import, NAR hashing) and
 * a serving daemon keeps blob files open: take the whole hard limit. */
static void raise_fd_limit(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
}

static void help(FILE *f) {
        fprintf(f, "Usage: castore [--store DIR] COMMAND [ARGS]\n\n"
                   "A content-addressed store for file trees, served over FUSE and virtiofs.\n\n"
                   "Commands:\n");
        for (const struct cli_command *const *cp = cli_commands; *cp; cp++)
                fprintf(f, "  %-10s %s\n             %s\n", (*cp)->name, (*cp)->usage, (*cp)->help);
        fprintf(f, "\n" CLI_NAME_HELP "Exit status: 0 success, 1 failure, 2 usage error.\n");
        fprintf(f, "\nThe store is --store DIR, else $CASTORE_STORE, else " CLI_SYSTEM_STORE " for root and\n"
                   "~/.local/share/castore for other users.\n"
                   "A gRPC daemon instead (castore daemon, tvix-store, snix-store):\n"
                   "  --store grpc+unix:///PATH | grpc+http://HOST:PORT   all three services there\n"
                   "  --blob-service-addr, --directory-service-addr, --path-info-service-addr ADDR\n"
                   "                       one service each ($BLOB_SERVICE_ADDR, ...)\n"
                   "  --cache DIR          a local store in front, written back into ($CASTORE_CACHE)\n"

                   "  --store-composition FILE   snix's composition TOML\n"
                   "PostgreSQL for directories and PathInfos, blobs in --store DIR:\n"
                   "  --directory-service-addr, --path-info-service-addr postgresql://...\n"
                   "Every command also takes -v/--verbose (more log), -q/--quiet (errors only) and\n"
                   "-h/--help (its usage); castore --version prints the version.\n"
                   "Manual: castore(1), mount.castore(8).\n");
}

static void command_help(const struct cli_command *c) {
        printf("Usage: castore [--store DIR] %s %s\n\n%s\n", c->name, c->usage, c->help);
        if (c->names_trees)
                printf("\n" CLI_NAME_HELP);
        printf("\nCommon options: -v/--verbose (more log), -q/--quiet (errors only), --store DIR|URL, --cache DIR,\n"
               "--blob-service-addr/--directory-service-addr/--path-info-service-addr ADDR, --store-composition FILE\n"
               "(castore help: what they mean).\n");
}

/* --help or -h among a command's arguments (before a "--"). */
static bool wants_help(int argc, char **argv) {
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--") == 0)
                        return false;
                if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
                        return true;
        }
        return false;
}

static const struct cli_command *command_find(const char *name) {
        for (const struct cli_command *const *cp = cli_commands; *cp; cp++)
                if (strcmp((*cp)->name, name) == 0)
                        return *cp;
        return NULL;
}

static int exit_code(int r) {
        if (r == -EINVAL)
                return CLI_EXIT_USAGE;
        return r < 0 ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        int opt;

        const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];

        log_set_prefix("castore: ");
        if (log_stderr_is_journal())
                log_set_target(LOG_TARGET_JOURNAL);
        raise_fd_limit();
        if (strcmp(base, "mount.castore") == 0) {
                log_set_prefix("mount.castore: ");
                return exit_code(cli_mount_helper(argc, argv));
        }
        if (strcmp(base, "castore-virtiofs") == 0)
                return exit_code(cli_virtiofs_backend(argc, argv));
        /* global options stop at the first non-option: the command */
        while ((opt = getopt_long(argc, argv, "+hV" CLI_COMMON_SHORTOPTS, opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                switch (opt) {
                case 'h':
                        help(stdout);
                        return CLI_EXIT_OK;
                case 'V':
                        printf("castore %s\n", CASTORE_VERSION);
                        return CLI_EXIT_OK;
                default:
                        return CLI_EXIT_USAGE;
                }
        }
        if (optind >= argc) {
                help(stderr);
                return CLI_EXIT_USAGE;
        }
        const char *name = argv[optind];
        const struct cli_command *c;

        if (strcmp(name, "help") == 0) {
                if (optind + 1 < argc) {
                        c = command_find(argv[optind + 1]);
                        if (!c) {
                                log_error("Unknown command \"%s\" (see \"castore help\")", argv[optind + 1]);
                                return CLI_EXIT_USAGE;
                        }
                        command_help(c);
                } else
                        help(stdout);
                return CLI_EXIT_OK;
        }
        c = command_find(name);
        if (c) {
                int cmd_argc = argc - optind;
                char **cmd_argv = argv + optind;

                if (wants_help(cmd_argc, cmd_argv)) {
                        command_help(c);
                        return CLI_EXIT_OK;
                }
                optind = 0; /* reset getopt for the command's own parsing */
                return exit_code(c->run(cmd_argc, cmd_argv));
        }
        log_error("Unknown command \"%s\" (see \"castore help\")", name);
        return CLI_EXIT_USAGE;
}
