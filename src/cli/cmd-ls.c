/* castore ls and castore stat: show roots, directory listings and nodes. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util/log.h"

static const char *kind_word(const struct cas_node *n) {
        if (n->kind == CAS_NODE_DIRECTORY)
                return "dir ";
        if (n->kind == CAS_NODE_SYMLINK)
                return "link";
        return n->executable ? "exec" : "file";
}

static void print_node(const struct cas_node *n, bool lng) {
        if (lng) {
                printf("%s %12llu ", kind_word(n), (unsigned long long) n->size);
                if (n->kind == CAS_NODE_SYMLINK)
                        printf("%-47s ", "-");
                else
                        printf("%s ", CAS_DIGEST_B3(&n->digest));
        }
        fwrite(n->name, 1, n->name_len, stdout);
        if (n->kind == CAS_NODE_SYMLINK && lng) {
                fputs(" -> ", stdout);
                fwrite(n->target, 1, n->target_len, stdout);
        } else if (n->kind == CAS_NODE_DIRECTORY && !lng)
                putchar('/');
        putchar('\n');
}

static int print_root(void *userdata, const struct cas_node *n) {
        print_node(n, *(bool *) userdata);
        return 0;
}

static int run_ls(int argc, char **argv) {
        static const struct option opts[] = { CLI_COMMON_LONGOPTS, { "long", no_argument, NULL, 'l' }, {} };
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
        _cleanup_free_ void *mem = NULL;
        struct cas_node n;
        bool lng = false;
        int opt, r;

        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "l", opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                if (opt != 'l')
                        return -EINVAL;
                lng = true;
        }
        if (argc - optind > 1)
                return cli_usage_error("ls", "too many arguments");
        r = cli_store_open(0, &store);
        if (r < 0)
                return r;
        if (optind == argc) {
                r = cas_root_list(store->roots, print_root, &lng);
                return r < 0 ? log_error_errno(r, "Failed to list roots: %m") : 0;
        }
        r = cli_resolve(store, argv[optind], &n, &mem);
        if (r < 0)
                return r;
        if (n.kind != CAS_NODE_DIRECTORY) {
                print_node(&n, lng);
                return 0;
        }
        r = cas_dir_get(store->dirs, &n.digest, &d);
        if (r < 0)
                return log_error_errno(r, "%s: cannot read directory %s: %m", argv[optind], CAS_DIGEST_B3(&n.digest));
        for (size_t i = 0; i < d->n_entries; i++)
                print_node(&d->entries[i], lng);
        return 0;
}

const struct cli_command cli_cmd_ls = {
        .name = "ls",
        .run = run_ls,
        .usage = "[-l] [ROOT[/PATH]]",
        .help = "list the roots, or a directory of the store (-l: kind, size, digest)",
};

static int run_stat(int argc, char **argv) {
        static const struct option opts[] = { CLI_COMMON_LONGOPTS, {} };
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        int opt, r;

        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, opts, NULL)) >= 0)
                if (!cli_common_option(opt, optarg))
                        return -EINVAL;
        if (optind == argc)
                return cli_usage_error("stat", "missing ROOT[/PATH]");
        r = cli_store_open(0, &store);
        if (r < 0)
                return r;
        for (int i = optind; i < argc; i++) {
                _cleanup_free_ void *mem = NULL;
                struct cas_node n;

                r = cli_resolve(store, argv[i], &n, &mem);
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
