/* castore import: ingest local trees into the store and register each as a
 * named root. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "castore/import.h"
#include "cli/cli.h"
#include "store/nar.h"
#include "store/pathinfosvc.h"
#include "util/log.h"

struct import_args {
        const char *name;
        bool json;
        bool skip_special;
        int progress; /* -1: if stderr is a TTY */
        unsigned threads;
        bool no_nix;  /* no PathInfo under the CA store path */
};

static const char *kind_str(enum cas_node_kind k) {
        return k == CAS_NODE_DIRECTORY ? "directory" : k == CAS_NODE_FILE ? "file" : "symlink";
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

static void print_json_string(const char *s) {
        putchar('"');
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if (*p == '"' || *p == '\\')
                        printf("\\%c", *p);
                else if (*p < 0x20)
                        printf("\\u%04x", *p);
                else
                        putchar(*p);
        }
        putchar('"');
}

/* The NAR of the tree, computed from the source by a second thread while
 * the import runs (the NAR hash is what a Nix store path needs; computing
 * it from the store afterwards would read and hash every byte again). */
struct nar_job {
        pthread_t thread;
        const char *path;
        bool skip_special;
        int r;
        uint64_t nar_size;
        uint8_t nar_sha256[NIX_SHA256_LEN];
        struct cas_node root;
        void *mem;
};

static void *nar_job_run(void *p) {
        struct nar_job *j = p;

        j->r = nar_hash_local(j->path, j->skip_special, &j->nar_size, j->nar_sha256, &j->root, &j->mem);
        return NULL;
}

static bool same_node(const struct cas_node *a, const struct cas_node *b) {
        if (a->kind != b->kind)
                return false;
        if (a->kind == CAS_NODE_SYMLINK)
                return a->target_len == b->target_len && memcmp(a->target, b->target, a->target_len) == 0;
        return cas_digest_equal(&a->digest, &b->digest) && a->size == b->size &&
               (a->kind != CAS_NODE_FILE || a->executable == b->executable);
}

/* Registers the imported tree as the store path nix-store --add would give
 * it, with the NAR hash of the source, which is only valid if the source
 * read by the hashing thread is the tree that was imported. */
static int register_nix(struct nix_pathinfo_service *pis, const struct cas_node *root, const char *path,
                        const char *name, const struct nar_job *j, char *ret_path) {
        struct nix_store_path sp;
        int r;

        if (j->r == -ELOOP)
                return log_error_errno(j->r, "%s: nested deeper than a NAR may be (%d levels): registered as the "
                                             "root \"%s\", not as a Nix store path", path, NAR_DEPTH_MAX, name);
        if (j->r < 0)
                return log_error_errno(j->r, "%s: cannot compute its NAR hash, not registered as a Nix store path: %m",
                                       path);
        if (!same_node(&j->root, root))
                return log_error_errno(-ESTALE, "%s changed during the import: registered as the root \"%s\", "
                                                "not as a Nix store path", path, name);
        r = nix_register_nar(pis, root, name, j->nar_size, j->nar_sha256, &sp);
        if (r < 0)
                return log_error_errno(r, "Failed to register %s as a Nix store path: %m", name);
        nix_store_path_absolute(&sp, ret_path);
        return 0;
}

static int import_one(struct cas_store *store, struct nix_pathinfo_service *pis, const char *path, const char *name,
                      const struct import_args *a, bool first) {
        struct cas_import_opts opts = {
                .threads = a->threads,
                .skip_special = a->skip_special,
                .progress = a->progress < 0 ? isatty(STDERR_FILENO) : a->progress,
        };
        struct cas_import_stats st;
        struct cas_node root;
        _cleanup_free_ void *mem = NULL;
        char store_path[NIX_PATH_MAX + 1] = "";
        struct nar_job j = { .path = path, .skip_special = a->skip_special };
        bool nix = pis != NULL;
        int r;

        if (cas_name_check(name, strlen(name)) != CAS_VERR_NONE)
                return log_error_errno(-EINVAL, "Invalid root name \"%s\" (use --name)", name);
        if (nix && nix_name_check(name, strlen(name)) < 0) {
                log_warning("%s: not a valid Nix store path name; registered as a named root only", name);
                nix = false;
        }
        if (nix) {
                r = -pthread_create(&j.thread, NULL, nar_job_run, &j);
                if (r < 0)
                        return log_error_errno(r, "Cannot start the NAR hashing thread: %m");
        }
        r = cas_import_path(store, path, &opts, &root, &mem, &st);
        if (nix)
                pthread_join(j.thread, NULL);
        _cleanup_free_ void *nar_mem = TAKE_PTR(j.mem); /* a symlink root's target */
        (void) nar_mem;
        if (r < 0)
                return log_error_errno(r, "Failed to import %s: %m", path);
        root.name = name;
        root.name_len = strlen(name);
        r = cas_root_put(store->roots, &root);
        if (r < 0)
                return log_error_errno(r, "Failed to register root %s: %m", name);
        if (nix) {
                r = register_nix(pis, &root, path, name, &j, store_path);
                if (r < 0)
                        return r;
        }
        log_info("%s: %llu files, %llu directories, %llu symlinks, %llu bytes", name,
                 (unsigned long long) st.files, (unsigned long long) st.directories,
                 (unsigned long long) st.symlinks, (unsigned long long) st.bytes);
        if (a->json) {
                printf("%s\n  {\"name\": ", first ? "[" : ",");
                print_json_string(name);
                printf(", \"path\": ");
                print_json_string(path);
                printf(", \"kind\": \"%s\"", kind_str(root.kind));
                if (root.kind != CAS_NODE_SYMLINK)
                        printf(", \"digest\": \"%s\", \"size\": %llu", CAS_DIGEST_B3(&root.digest),
                               (unsigned long long) root.size);
                if (store_path[0]) {
                        printf(", \"storePath\": ");
                        print_json_string(store_path);
                }
                printf(", \"files\": %llu, \"directories\": %llu, \"symlinks\": %llu, \"bytes\": %llu}",
                       (unsigned long long) st.files, (unsigned long long) st.directories,
                       (unsigned long long) st.symlinks, (unsigned long long) st.bytes);
        } else if (root.kind == CAS_NODE_SYMLINK)
                printf("%s symlink:%s%s%s\n", name, root.target, store_path[0] ? " " : "", store_path);
        else
                printf("%s %s%s%s\n", name, CAS_DIGEST_B3(&root.digest), store_path[0] ? " " : "", store_path);
        return 0;
}

static int run_import(int argc, char **argv) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                { "name", required_argument, NULL, 'n' },
                { "json", no_argument, NULL, 'j' },
                { "skip-special", no_argument, NULL, 's' },
                { "threads", required_argument, NULL, 't' },
                { "progress", no_argument, NULL, 'p' },
                { "no-progress", no_argument, NULL, 'P' },
                { "no-nix", no_argument, NULL, 'N' },
                {},
        };
        struct import_args a = { .progress = -1 };
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        int opt, r = 0;

        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "n:", opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                switch (opt) {
                case 'n':
                        a.name = optarg;
                        break;
                case 'j':
                        a.json = true;
                        break;
                case 's':
                        a.skip_special = true;
                        break;
                case 't': {
                        char *end;
                        unsigned long t = strtoul(optarg, &end, 10);
                        if (*end || t == 0 || t > 1024)
                                return cli_usage_error("import", "--threads takes a number from 1 to 1024");
                        a.threads = t;
                        break;
                }
                case 'p':
                        a.progress = 1;
                        break;
                case 'P':
                        a.progress = 0;
                        break;
                case 'N':
                        a.no_nix = true;
                        break;
                default:
                        return -EINVAL;
                }
        }
        if (optind >= argc)
                return cli_usage_error("import", "missing PATH");
        if (a.name && argc - optind > 1)
                return cli_usage_error("import", "--name needs exactly one PATH");
        for (int i = optind; i < argc; i++)
                if (faccessat(AT_FDCWD, argv[i], F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
                        return log_error_errno(-ENOENT, "%s: No such file or directory", argv[i]);
        r = cli_store_open(CAS_STORE_CREATE, &store);
        if (r < 0)
                return r;
        if (!a.no_nix) {
                r = nix_pathinfo_open_store(store, &pis);
                if (r < 0)
                        return log_error_errno(r, "Failed to open the PathInfo service: %m");
        }
        for (int i = optind; i < argc; i++) {
                _cleanup_free_ char *name = NULL;

                if (!a.name) {
                        r = default_name(argv[i], &name);
                        if (r < 0)
                                return log_error_errno(r, "%s: %m", argv[i]);
                }
                r = import_one(store, pis, argv[i], a.name ? a.name : name, &a, i == optind);
                if (r < 0)
                        break;
        }
        if (a.json && r >= 0)
                printf("\n]\n");
        return r;
}

const struct cli_command cli_cmd_import = {
        .name = "import",
        .run = run_import,
        .usage = "PATH... [--name NAME] [--json] [--threads N] [--skip-special] [--no-nix]",
        .help = "import files or trees; register each as a root (named after its last component) and as the\n"
                "             Nix store path nix-store --add would give it (not with --no-nix)",
};
