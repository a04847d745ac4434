/* castore ls and castore stat: show roots, directory listings and nodes. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/log.h"

static const char *kind_word(const struct cas_node *n) {
        if (n->kind == CAS_NODE_DIRECTORY)
                return "dir ";
        if (n->kind == CAS_NODE_SYMLINK)
                return "link";
        return n->executable ? "exec" : "file";
}

static void print_node(const struct cas_node *n, bool lng, const char *prefix) {
        if (lng) {
                printf("%s %12llu ", kind_word(n), (unsigned long long) n->size);
                if (n->kind == CAS_NODE_SYMLINK)
                        printf("%-47s ", "-");
                else
                        printf("%s ", CAS_DIGEST_B3(&n->digest));
        }
        if (prefix)
                fputs(prefix, stdout);
        fwrite(n->name, 1, n->name_len, stdout);
        if (n->kind == CAS_NODE_SYMLINK && lng) {
                fputs(" -> ", stdout);
                fwrite(n->target, 1, n->target_len, stdout);
        } else if (n->kind == CAS_NODE_DIRECTORY && !lng && !prefix)
                putchar('/');
        putchar('\n');
}

static int print_root(void *userdata, const struct cas_node *n) {
        print_node(n, *(bool *) userdata, NULL);
        return 0;
}

/* Lists d and, with recursive, everything below it, each entry named by
 * its path relative to the listed directory. */
static int list_dir(struct cas_store *store, const struct cas_digest *digest, const char *prefix, bool lng,
                    bool recursive) {
        _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
        int r;

        r = cas_dir_get(store->dirs, digest, &d);
        if (r < 0)
                return log_error_errno(r, "%s: cannot read directory %s: %m", prefix[0] ? prefix : ".",
                                       CAS_DIGEST_B3(digest));
        for (size_t i = 0; i < d->n_entries; i++)
                print_node(&d->entries[i], lng, recursive ? prefix : NULL);
        for (size_t i = 0; recursive && i < d->n_entries; i++) {
                const struct cas_node *e = &d->entries[i];
                _cleanup_free_ char *sub = NULL;

                if (e->kind != CAS_NODE_DIRECTORY)
                        continue;
                if (asprintf(&sub, "%s%s/", prefix, e->name) < 0)
                        return -ENOMEM;
                r = list_dir(store, &e->digest, sub, lng, true);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int run_ls(int argc, char **argv) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                { "long", no_argument, NULL, 'l' },
                { "recursive", no_argument, NULL, 'R' },
                {},
        };
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        _cleanup_free_ void *mem = NULL;
        struct cas_node n;
        bool lng = false, recursive = false;
        int opt, r;

        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "lR", opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                if (opt == 'l')
                        lng = true;
                else if (opt == 'R')
                        recursive = true;
                else
                        return -EINVAL;
        }
        if (argc - optind > 1)
                return cli_usage_error("ls", "too many arguments");
        r = cli_store_open(0, &store, &pis);
        if (r < 0)
                return r;
        if (optind == argc) {
                r = cas_root_list(store->roots, print_root, &lng);
                return r < 0 ? log_error_errno(r, "Failed to list roots: %m") : 0;
        }
        r = cli_resolve(store, pis, argv[optind], &n, &mem);
        if (r < 0)
                return r;
        if (n.kind != CAS_NODE_DIRECTORY) {
                print_node(&n, lng, NULL);
                return 0;
        }
        return list_dir(store, &n.digest, "", lng, recursive);
}

const struct cli_command cli_cmd_ls = {
        .name = "ls",
        .run = run_ls,
        .usage = "[-l|--long] [-R|--recursive] [ROOT[/PATH]]",
        .help = "list the roots, or a directory of the store (-l: kind, size, digest; -R: recursive)",
};

static int run_stat(int argc, char **argv) {
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        int r;

        r = cli_begin("stat", argc, argv, "ROOT[/PATH]", 0, &store, &pis);
        if (r < 0)
                return r;
        for (int i = r; i < argc; i++) {
                _cleanup_free_ void *mem = NULL;
                struct cas_node n;

                r = cli_resolve(store, pis, argv[i], &n, &mem);
                if (r < 0)
                        return r;
                printf("path: %s\n", argv[i]);
                switch (n.kind) {
                case CAS_NODE_DIRECTORY:
                        printf("type: directory\ndigest: %s\nentries: %llu (recursive)\n", CAS_DIGEST_B3(&n.digest),
                               (unsigned long long) n.size);
                        break;
                case CAS_NODE_FILE:
                        printf("type: file\ndigest: %s\nsize: %llu\nexecutable: %s\n", CAS_DIGEST_B3(&n.digest),
                               (unsigned long long) n.size, n.executable ? "yes" : "no");
                        break;
                case CAS_NODE_SYMLINK:
                        printf("type: symlink\ntarget: %s\n", n.target);
                        break;
                }
        }
        return 0;
}

const struct cli_command cli_cmd_stat = {
        .name = "stat",
        .run = run_stat,
        .usage = "ROOT[/PATH]...",
        .help = "show the kind, digest and size of nodes",
};
