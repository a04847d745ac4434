/* castore import: parses the arguments (references given as store paths
 * or read from a JSON file), imports each PATH with nix_import_tree
 * (named root and Nix store path) and prints the result. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "store/nix_import.h"
#include "util/io.h"
#include "util/json.h"
#include "util/log.h"

/* References given on the command line and read from files, gathered. */
struct refs {
        struct nix_store_path *paths;
        size_t n;
};

static void refs_free(struct refs *r) {
        free(r->paths);
}

static int refs_add(struct refs *rs, const struct nix_store_path *p, size_t n) {
        struct nix_store_path *t = reallocarray(rs->paths, rs->n + n + 1, sizeof(*t));

        if (!t)
                return -ENOMEM;
        rs->paths = t;
        memcpy(t + rs->n, p, n * sizeof(*p));
        rs->n += n;
        return 0;
}

/* --references "P1 P2,P3": store paths separated by spaces or commas. */
static int refs_parse_list(struct refs *rs, const char *list) {
        _cleanup_free_ char *copy = strdup(list);
        char *save = NULL;

        if (!copy)
                return -ENOMEM;
        for (char *w = strtok_r(copy, " \t\n,", &save); w; w = strtok_r(NULL, " \t\n,", &save)) {
                struct nix_store_path p;
                const char *sub;
                int r;

                if (nix_store_path_parse(w, &p, &sub) < 0 || *sub)
                        return cli_usage_error("import", "--references: not a store path: %s", w);
                r = refs_add(rs, &p, 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* --references-from FILE: nix path-info --json or exportReferencesGraph JSON. */
static int refs_read_file(struct refs *rs, const char *file) {
        _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_free_ struct nix_store_path *paths = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        const char *why = NULL;
        size_t len, n = 0;
        int r;

        if (fd < 0)
                return log_error_errno(-EINVAL, "--references-from %s: %s", file, strerror(errno));
        r = read_file_fd(fd, 256 << 20, &buf, &len);
        if (r < 0)
                return log_error_errno(r == -ENOMEM ? r : -EINVAL, "--references-from %s: %s", file, strerror(-r));
        r = nix_references_from_json((const char *) buf, len, &paths, &n, &why);
        if (r == -EBADMSG)
                return log_error_errno(-EINVAL, "--references-from %s: %s (expected nix path-info --json output "
                                                "or an exportReferencesGraph file)", file, why);
        if (r < 0)
                return r;
        return refs_add(rs, paths, n);
}

/* The default root name: the last component of the path as given, or of
 * its canonical form for "/", "." and "..". */
static int default_name(const char *path, char **ret) {
        _cleanup_free_ char *copy = strdup(path), *real = NULL;
        char *base;

        if (!copy)
                return -ENOMEM;
        base = basename(copy);
        if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || strcmp(base, "/") == 0) {
                real = realpath(path, NULL);
                if (!real)
                        return negative_errno();
                base = basename(real);
        }
        *ret = strdup(base);
        return *ret ? 0 : -ENOMEM;
}

static void print_result(const char *path, const char *name, const struct nix_import_result *res, bool json,
                         bool first) {
        const struct cas_node *root = &res->root;
        char store_path[NIX_PATH_MAX + 1] = "";

        if (res->has_store_path)
                nix_store_path_absolute(&res->store_path, store_path);
        log_info("%s: %llu files, %llu directories, %llu symlinks, %llu bytes", name,
                 (unsigned long long) res->stats.files, (unsigned long long) res->stats.directories,
                 (unsigned long long) res->stats.symlinks, (unsigned long long) res->stats.bytes);
        if (json) {
                printf("%s\n  {\"name\": ", first ? "[" : ",");
                json_cstring(stdout, name);
                printf(", \"path\": ");
                json_cstring(stdout, path);
                printf(", \"kind\": \"%s\"", cli_kind_name(root->kind));
                if (root->kind != CAS_NODE_SYMLINK)
                        printf(", \"digest\": \"%s\", \"size\": %llu", CAS_DIGEST_B3(&root->digest),
                               (unsigned long long) root->size);
                if (store_path[0]) {
                        printf(", \"storePath\": ");
                        json_cstring(stdout, store_path);
                }
                printf(", \"files\": %llu, \"directories\": %llu, \"symlinks\": %llu, \"bytes\": %llu}",
                       (unsigned long long) res->stats.files, (unsigned long long) res->stats.directories,
                       (unsigned long long) res->stats.symlinks, (unsigned long long) res->stats.bytes);
        } else if (root->kind == CAS_NODE_SYMLINK)
                printf("%s symlink:%s%s%s\n", name, root->target, store_path[0] ? " " : "", store_path);
        else
                printf("%s %s%s%s\n", name, CAS_DIGEST_B3(&root->digest), store_path[0] ? " " : "", store_path);
}

/* One PATH: imported and registered by the library, printed here.  A tree
 * too deep for a NAR is registered as a named root only: printed, and an
 * error all the same. */
static int import_one(struct cas_store *store, struct nix_pathinfo_service *pis, const char *path, const char *name,
                      const struct nix_import_opts *opts, bool json, bool first) {
        struct nix_import_result res;
        int r;

        r = nix_import_tree(store, pis, path, name, opts, &res);
        if (r == -EEXIST)
                log_error("import --force replaces it; castore rm removes it");
        if (r < 0 && r != -ELOOP)
                return r;
        print_result(path, name, &res, json, first);
        free(res.mem);
        return r;
}

static int run_import(int argc, char **argv) {
        static const struct option options[] = {
                CLI_COMMON_LONGOPTS,
                { "name", required_argument, NULL, 'n' },
                { "json", no_argument, NULL, 'j' },
                { "skip-special", no_argument, NULL, 's' },
                { "threads", required_argument, NULL, 't' },
                { "progress", no_argument, NULL, 'p' },
                { "no-progress", no_argument, NULL, 'P' },
                { "no-nix", no_argument, NULL, 'N' },
                { "force", no_argument, NULL, 'f' },
                { "references", required_argument, NULL, 'r' },
                { "references-from", required_argument, NULL, 'R' },
                { "self-reference", no_argument, NULL, 'F' },
                { "no-pack", no_argument, NULL, 'K' },
                {},
        };
        struct nix_import_opts opts = { .import.progress = isatty(STDERR_FILENO) };
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        _cleanup_(refs_free) struct refs refs = {};
        const char *name_arg = NULL;
        bool json = false, nix = true;
        unsigned long threads;
        int opt, r = 0;

        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "n:", options, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                switch (opt) {
                case 'n':
                        name_arg = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 's':
                        opts.import.skip_special = true;
                        break;
                case 't':
                        if (cli_parse_uint(optarg, 1, 1024, &threads) < 0)
                                return cli_usage_error("import", "--threads takes a number from 1 to 1024");
                        opts.import.threads = (unsigned) threads;
                        break;
                case 'p':
                case 'P':
                        opts.import.progress = opt == 'p';
                        break;
                case 'N':
                        nix = false;
                        break;
                case 'f':
                        opts.replace = true;
                        break;
                case 'r':
                case 'R':
                        r = opt == 'r' ? refs_parse_list(&refs, optarg) : refs_read_file(&refs, optarg);
                        if (r < 0)
                                return r;
                        break;
                case 'F':
                        opts.self_reference = true;
                        break;
                case 'K':
                        opts.import.no_pack = true;
                        break;
                default:
                        return -EINVAL;
                }
        }
        if (optind >= argc)
                return cli_usage_error("import", "missing PATH");
        if (!nix && (refs.n || opts.self_reference))
                return cli_usage_error("import", "--references and --self-reference need a Nix store path "
                                                 "(not --no-nix)");
        opts.references = refs.paths;
        opts.n_references = refs.n;
        if (name_arg && argc - optind > 1)
                return cli_usage_error("import", "--name needs exactly one PATH");
        if (name_arg && !cas_root_name_valid(name_arg, strlen(name_arg)))
                return cli_usage_error("import", "invalid --name \"%s\": a root name is not empty, \".\" or "
                                                 "\"..\", and has no \"/\" and no control characters", name_arg);
        for (int i = optind; i < argc; i++)
                if (faccessat(AT_FDCWD, argv[i], F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
                        return log_error_errno(-ENOENT, "%s: No such file or directory", argv[i]);
        r = cli_store_open(CAS_STORE_CREATE, &store, nix ? &pis : NULL);
        if (r < 0)
                return cli_failure(r);
        for (int i = optind; i < argc && r >= 0; i++) {
                _cleanup_free_ char *name = NULL;

                if (!name_arg) {
                        r = default_name(argv[i], &name);
                        if (r < 0)
                                return log_error_errno(r, "%s: %m", argv[i]);
                }
                r = import_one(store, pis, argv[i], name_arg ? name_arg : name, &opts, json, i == optind);
        }
        if (json && r >= 0)
                printf("\n]\n");
        return cli_failure(r);
}

const struct cli_command cli_cmd_import = {
        .name = "import",
        .run = run_import,
        .usage = "PATH... [--name NAME] [--force] [--json] [--threads N] [--skip-special] [--no-nix] [--no-pack] "
                 "[--references \"STOREPATH...\"] [--references-from FILE] [--self-reference] "
                 "[--progress|--no-progress]",
        .help = "import files or trees; register each as a root (named after its last component) and as the\n"
                "             Nix store path nix-store --add would give it (not with --no-nix); a root of that name\n"
                "             with other content is replaced only with --force; --references (store paths, or\n"
                "             --references-from nix path-info --json output) must be registered paths; files of\n"
                "             1 MiB or less go into pack files in import order (not with --no-pack)",
};
