/* Shared pieces of the castore command: the subcommand table entry, the
 * store location, and small helpers for argument handling.  Only src/cli
 * may call exit(). */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

#include "castore/store.h"
#include "fs/fs.h"
#include "store/pathinfosvc.h"
#include "store/resolve.h"

struct cli_command {
        const char *name;
        int (*run)(int argc, char **argv); /* argv[0] is the command name */
        const char *usage;                 /* one line: arguments */
        const char *help;                  /* one line: what it does */
        bool names_trees;                  /* takes NAME[/PATH] arguments: help explains NAME */
};

/* The store URL: --store, else $CASTORE_STORE, else /var/lib/castore
 * for root, else $XDG_DATA_HOME/castore or ~/.local/share/castore.
 * Returns a static or argv string. */
const char *cli_store_url(void);
void cli_set_store_url(const char *url);

/* Opens the store named by cli_store_url() and the service addresses
 * (--blob-service-addr ... or $BLOB_SERVICE_ADDR ..., --cache or
 * $CASTORE_CACHE; remote/services.h), and its PathInfo service if
 * ret_pathinfo is not NULL (free it first).  Logs a one-line error.
 * flags: CAS_STORE_CREATE for commands that write. */
int cli_store_open(unsigned flags, struct cas_store **ret, struct nix_pathinfo_service **ret_pathinfo);
/* Flag for cli_store_open: a serving daemon (prefetching into --cache). */
#define CLI_STORE_SERVING (1u << 16)
/* Whether a service is a gRPC daemon's or a Nix binary cache, or the
 * blobs are an object store's: no local listing is the store's own
 * (verify goes through NARs). */
bool cli_store_is_remote(void);
/* Whether blobs, directories or PathInfos are shared with other stores
 * (remote as above, or PostgreSQL): no local garbage collection; serving
 * daemons may connect out. */
bool cli_store_is_shared(void);
/* The directory of the file object store holding the blobs of the store
 * cli_store_open opened (objectstore+file://DIR), malloc'ed and absolute;
 * NULL if the blobs are elsewhere or it cannot be resolved. */
char *cli_objstore_dir(void);
/* The trees a confined process serving store must reach read-write (the
 * sandbox's rw paths): the local store (or a remote store's cache), where
 * outboards are repaired; a cache beside a local store; the file object
 * store holding the blobs.  Absolute, malloc'ed, NULL-terminated in ret
 * (free with cli_store_paths_free).  Resolved now, since a daemon leaves
 * its working directory.  0 or -errno (logged). */
#define CLI_STORE_PATHS_MAX 4
int cli_store_paths(struct cas_store *store, char *ret[CLI_STORE_PATHS_MAX]);
void cli_store_paths_free(char **paths);

/* getopt_long handling of the options every command accepts (--store,
 * --verbose/-v, --quiet/-q).  Returns true if opt was one of them. */
bool cli_common_option(int opt, const char *arg);
enum {
        CLI_OPT_BLOB_ADDR = 0x300,
        CLI_OPT_DIR_ADDR,
        CLI_OPT_PATHINFO_ADDR,
        CLI_OPT_CACHE,
        CLI_OPT_COMPOSITION,
};
#define CLI_COMMON_LONGOPTS                                                        \
        { "store", required_argument, NULL, 'S' },                                 \
        { "blob-service-addr", required_argument, NULL, CLI_OPT_BLOB_ADDR },       \
        { "directory-service-addr", required_argument, NULL, CLI_OPT_DIR_ADDR },   \
        { "path-info-service-addr", required_argument, NULL, CLI_OPT_PATHINFO_ADDR }, \
        { "cache", required_argument, NULL, CLI_OPT_CACHE },                        \
        { "store-composition", required_argument, NULL, CLI_OPT_COMPOSITION },      \
        { "verbose", no_argument, NULL, 'v' },                \
        { "quiet", no_argument, NULL, 'q' }
#define CLI_COMMON_SHORTOPTS "vq"

/* Resolves a command's NAME[/sub/path] argument with nix_resolve
 * (store/resolve.h: a named root, a store path or a directory digest;
 * flags NIX_RESOLVE_*).  Logs the error and returns it: -EINVAL (a usage
 * error) only for a malformed NAME (empty, a leading "/" outside
 * /nix/store, ".."), anything else is a failure.  Free *ret with
 * nix_resolved_done. */
int cli_resolve(struct cas_store *store, struct nix_pathinfo_service *pis, const char *arg, unsigned flags,
                struct nix_resolved *ret);

/* How NAME may be spelled, for the help of commands that name trees. */
#define CLI_NAME_HELP                                                                         \
        "NAME is a root name, a store path (/nix/store/HASH-NAME or HASH-NAME) or the digest\n" \
        "of a stored directory (b3:BASE64 or 64 hex digits), each with an optional /PATH below it;\n" \
        "a root name wins over the other spellings.\n"

/* Node output (output.c): "directory", "file", "symlink"; the four-letter
 * column of listings ("dir ", "file", "exec", "link"); the JSON members
 * of a node: "kind", then "digest" and "entries" (directories), "digest",
 * "size" and "executable" (files) or "target" (symlinks). */
const char *cli_kind_name(enum cas_node_kind k);
const char *cli_kind_word(const struct cas_node *n);
void cli_json_node(FILE *f, const struct cas_node *n);

/* For commands that take only the common options: parses them and
 * returns the index of the first argument, or -EINVAL. */
int cli_parse_common_only(int argc, char **argv);

/* For commands that take only the common options and at least one
 * argument: parses the options, checks that an argument follows (else a
 * usage error saying `missing`) and opens the store.  Returns the index of
 * the first argument, or a negative errno (logged). */
int cli_begin(const char *cmd, int argc, char **argv, const char *missing, unsigned store_flags,
              struct cas_store **ret_store, struct nix_pathinfo_service **ret_pathinfo);

/* Logs "Unknown option" / "Missing argument" style errors and returns -EINVAL. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a decimal number in [min, max]: 0 or -EINVAL. */
int cli_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *ret);

/* Options shared by the commands that serve a filesystem (mount,
 * virtiofs): --list-root, --uid N, --gid N, and the common ones
 * (cli_common_option).  cli_fs_option returns 1 if opt was one of them, 0
 * if not, -EINVAL (logged) for a bad value. */
enum { CLI_OPT_LIST_ROOT = 'l', CLI_OPT_UID = 'u', CLI_OPT_GID = 'g', CLI_OPT_SANDBOX = 0x200 };
#define CLI_FS_LONGOPTS                                              \
        { "list-root", no_argument, NULL, CLI_OPT_LIST_ROOT },       \
        { "uid", required_argument, NULL, CLI_OPT_UID },             \
        { "gid", required_argument, NULL, CLI_OPT_GID },             \
        { "sandbox", required_argument, NULL, CLI_OPT_SANDBOX }
int cli_fs_option(const char *cmd, int opt, const char *arg, struct fs_config *cfg);

/* A served store: the store (read-only, so a mount sees later imports),
 * its PathInfo service, the root providers (store path basenames, asked
 * first, and named roots; listed merged in name order) and the filesystem. */
struct cli_served {
        struct cas_store *store;
        char *rw_paths[CLI_STORE_PATHS_MAX]; /* cli_store_paths: what the sandbox lets it write */
        bool remote;       /* the services connect out (gRPC, PostgreSQL): the sandbox allows it */
        struct nix_pathinfo_service *pathinfo;
        struct cas_root_service *nix_roots;
        struct fs_root_provider providers[2];
        struct fs *fs;
};
/* Fills cfg->roots; logs errors.  Close with cli_served_close. */
int cli_served_open(struct fs_config *cfg, struct cli_served *ret);
/* Confines the serving process (src/util/sandbox.h) to the store, unless
 * --sandbox=none was given; keep_sys_admin for FUSE passthrough; socket:
 * a socket the daemon removes on exit, or NULL.  Call after set-up,
 * before serving threads start.  0 or -errno (logged). */
int cli_served_confine(struct cli_served *s, bool keep_sys_admin, bool io_uring, const char *socket);
void cli_served_close(struct cli_served *s);

/* --daemon (daemon.c).  cli_daemonize forks: the parent gets 1 once the
 * child called cli_daemon_ready (or -EIO if the child failed first; it
 * said why on stderr), the child 0, keeping only stdio and the readiness
 * pipe.  cli_daemon_prepare (before a sandbox) leaves the working
 * directory, opens /dev/null and connects to syslog (logging a warning if
 * there is none); cli_daemon_ready (userdata: the struct) points stdio at
 * /dev/null, the log at syslog (unless keep_stderr) and tells the parent. */
struct cli_daemon {
        int ready_fd;   /* the parent waits for a byte on it */
        int null_fd;    /* /dev/null, opened by cli_daemon_prepare */
        bool keep_stderr;
};
int cli_daemonize(struct cli_daemon *d);
void cli_daemon_prepare(struct cli_daemon *d);
void cli_daemon_ready(void *userdata);
void cli_daemon_done(struct cli_daemon *d);
/* For every serving command, daemon or not: cli_serving_prepare (before
 * the sandbox; d NULL in the foreground) also connects to systemd's notify
 * socket and, for a daemon, to syslog; cli_serving_ready (once serving)
 * also sends READY=1. */
void cli_serving_prepare(struct cli_daemon *d);
void cli_serving_ready(struct cli_daemon *d);

/* The program run under another name (main.c): mount.castore, as mount(8)
 * runs it (cmd-mount.c), and castore-virtiofs, the vhost-user back-end
 * program VM managers find (cmd-virtiofs.c): "castore virtiofs". */
int cli_mount_helper(int argc, char **argv);
int cli_virtiofs_backend(int argc, char **argv);

/* Exit codes: 0 ok, 1 failure, 2 usage error.  main maps a command's
 * -EINVAL to 2 (cli_usage_error and getopt errors return it) and any
 * other negative result to 1. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAILURE = 1, CLI_EXIT_USAGE = 2 };

/* The default store of root (the system units use it too). */
#define CLI_SYSTEM_STORE "/var/lib/castore"
/* A failure once the arguments were accepted (already logged): a library's
 * -EINVAL (a bad file in a tree, a malformed record) must not read as a
 * usage error. */
static inline int cli_failure(int r) {
        return r == -EINVAL ? -EIO : r;
}

/* Subcommands, one file each (src/cli/cmd-*.c), listed in commands.c. */
extern const struct cli_command *const cli_commands[];
