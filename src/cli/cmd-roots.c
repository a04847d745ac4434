/* castore roots and castore rm: list the registrations (named roots and
 * store paths) and remove them.  Removing a registration leaves the tree
 * in the store. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "store/nixbase32.h"
#include "util/json.h"
#include "util/log.h"

struct roots_out {
        bool json;
        unsigned shown; /* JSON objects printed so far */
};

/* One registration: type "root" or "storePath"; nar: the PathInfo of a
 * store path, else NULL. */
static void show(struct roots_out *o, const char *type, const char *name, size_t name_len, const struct cas_node *n,
                 const struct nix_pathinfo *nar) {
        char b32[64];

        if (o->json) {
                printf("%s{\"type\":\"%s\",\"name\":", o->shown++ ? ",\n " : "", type);
                json_string(stdout, name, name_len);
                putchar(',');
                cli_json_node(stdout, n);
                if (nar) {
                        nixbase32_encode(nar->nar_sha256, NIX_SHA256_LEN, b32);
                        printf(",\"narSize\":%" PRIu64 ",\"narHash\":\"sha256:%s\"", nar->nar_size, b32);
                }
                putchar('}');
                return;
        }
        if (nar)
                snprintf(b32, sizeof(b32), "%" PRIu64, nar->nar_size);
        printf("%-4s %s %12llu %12s %-47s ", nar ? "path" : "root", cli_kind_word(n), (unsigned long long) n->size,
               nar ? b32 : "-", n->kind == CAS_NODE_SYMLINK ? "-" : CAS_DIGEST_B3(&n->digest));
        fwrite(name, 1, name_len, stdout);
        putchar('\n');
}

static int show_root(void *userdata, const struct cas_node *n) {
        show(userdata, "root", n->name, n->name_len, n, NULL);
        return 0;
}

static int show_path(void *userdata, const struct nix_pathinfo *pi) {
        char path[NIX_PATH_MAX + 1];
        size_t len = nix_store_path_absolute(&pi->path, path);

        show(userdata, "storePath", path, len, &pi->node, pi);
        return 0;
}

static int run_roots(int argc, char **argv) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                { "json", no_argument, NULL, 'j' },
                {},
        };
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        struct roots_out o = {};
        int opt, r, r2;

        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                if (opt != 'j')
                        return -EINVAL;
                o.json = true;
        }
        if (optind < argc)
                return cli_usage_error("roots", "takes no arguments");
        r = cli_store_open(0, &store, &pis);
        if (r < 0)
                return cli_failure(r);
        if (o.json)
                putchar('[');
        r = cas_root_list(store->roots, show_root, &o);
        if (r < 0)
                log_error_errno(r, "Failed to list the named roots: %m");
        r2 = nix_pathinfo_list_by_name(pis, show_path, &o);
        if (r2 < 0)
                r = log_error_errno(r2, "Failed to list the store paths: %m");
        if (o.json)
                printf("]\n");
        return cli_failure(r);
}

const struct cli_command cli_cmd_roots = {
        .name = "roots",
        .run = run_roots,
        .usage = "[--json]",
        .help = "list the named roots and the store paths: type (root or path), kind, size (bytes of a file,\n"
                "             entries of a directory), NAR size, digest, name",
};

/* rm's arguments, checked before the store is opened: a name, or a whole
 * store path (not a path inside a tree). */
static int check_rm_arg(const char *arg) {
        struct nix_store_path p;
        struct cas_digest d;

        if (cas_digest_parse(arg, &d) >= 0)
                return 0; /* b3: may hold "/"; refused once the store is open */
        if (arg[0] == '\0')
                return cli_usage_error("rm", "empty name");
        if (arg[0] == '/' && nix_store_path_from_absolute(arg, &p, NULL) < 0)
                return cli_usage_error("rm", "\"%s\" is not a store path (/nix/store/HASH-NAME)", arg);
        if (arg[0] != '/' && strchr(arg, '/'))
                return cli_usage_error("rm", "\"%s\" is a path inside a tree: rm removes roots and store paths",
                                       arg);
        return 0;
}

/* Sorts one argument into roots (their index in argv) or store paths. */
static int classify(struct cas_store *store, const char *arg, bool *ret_root, struct nix_store_path *ret_path) {
        _cleanup_free_ void *mem = NULL;
        struct cas_digest d;
        struct cas_node n;
        int r;

        r = cas_root_get(store->roots, arg, strlen(arg), &n, &mem);
        if (r >= 0) {
                *ret_root = true;
                return 0;
        }
        if (r != -ENOENT)
                return log_error_errno(r, "Failed to look up root \"%s\": %m", arg);
        *ret_root = false;
        if (nix_store_path_parse(arg, ret_path, NULL) >= 0)
                return 0;
        if (cas_digest_parse(arg, &d) >= 0)
                return log_error_errno(-ENOENT, "%s is a digest, which names content, not a registration: "
                                                "nothing to remove", arg);
        return log_error_errno(-ENOENT, "No root or store path named \"%s\" in the store", arg);
}

static int run_rm(int argc, char **argv) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                { "force", no_argument, NULL, 'f' },
                {},
        };
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        _cleanup_free_ struct nix_store_path *paths = NULL;
        _cleanup_free_ bool *is_root = NULL;
        size_t n_paths = 0;
        bool force = false;
        char err[1024] = "";
        int opt, r;

        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "f", opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                if (opt != 'f')
                        return -EINVAL;
                force = true;
        }
        if (optind >= argc)
                return cli_usage_error("rm", "missing NAME or STOREPATH");
        for (int i = optind; i < argc; i++) {
                r = check_rm_arg(argv[i]);
                if (r < 0)
                        return r;
        }
        paths = calloc(argc, sizeof(*paths));
        is_root = calloc(argc, sizeof(*is_root));
        if (!paths || !is_root)
                return log_error_errno(-ENOMEM, "Out of memory");
        r = cli_store_open(0, &store, &pis);
        if (r < 0)
                return cli_failure(r);
        /* every argument is found before anything is removed */
        for (int i = optind; i < argc; i++) {
                r = classify(store, argv[i], &is_root[i], &paths[n_paths]);
                if (r < 0)
                        return cli_failure(r);
                if (!is_root[i])
                        n_paths++;
        }
        r = nix_pathinfo_remove_paths(pis, paths, n_paths, force, err, sizeof(err));
        if (r == -EBUSY)
                log_error("%s: not removed (nothing was; --force removes it anyway)", err);
        else if (r == -EOPNOTSUPP)
                log_error("%s: the PathInfoService protocol of gRPC daemons has no delete call; run castore rm "
                          "where the daemon's store is", err);
        else if (r < 0)
                log_error("%s", err[0] ? err : strerror(-r));
        if (r < 0)
                return cli_failure(r);
        for (int i = optind; i < argc; i++) {
                if (!is_root[i])
                        continue;
                r = cas_root_remove(store->roots, argv[i], strlen(argv[i]));
                if (r < 0 && r != -ENOENT) /* -ENOENT: named twice, or removed meanwhile */
                        return cli_failure(log_error_errno(r, "Failed to remove root \"%s\": %m", argv[i]));
                log_info("removed root %s", argv[i]);
        }
        return 0;
}

const struct cli_command cli_cmd_rm = {
        .name = "rm",
        .run = run_rm,
        .usage = "NAME|STOREPATH... [--force]",
        .help = "remove named roots and store paths (their registrations only: blobs and directories stay\n"
                "             until garbage collection); a store path another registered store path refers to is\n"
                "             kept unless --force; if any argument is unknown, nothing is removed",
};
