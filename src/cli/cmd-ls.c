/* castore ls and castore stat: show roots, directory listings and nodes,
 * as text or (--json) as JSON arrays. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/json.h"
#include "util/log.h"

struct ls_out {
        bool lng, recursive, json;
        unsigned shown; /* JSON objects printed so far */
};

/* {"name":..., ["path": prefix + name,] node members} */
static int print_json(const struct cas_node *n, struct ls_out *o, const char *prefix) {
        printf("%s{\"name\":", o->shown++ ? ",\n " : "");
        json_string(stdout, n->name, n->name_len);
        if (prefix) {
                size_t plen = strlen(prefix);
                _cleanup_free_ char *p = malloc(plen + n->name_len + 1);

                if (!p)
                        return -ENOMEM;
                memcpy(p, prefix, plen);
                memcpy(p + plen, n->name, n->name_len);
                fputs(",\"path\":", stdout);
                json_string(stdout, p, plen + n->name_len);
        }
        putchar(',');
        cli_json_node(stdout, n);
        putchar('}');
        return 0;
}

static int print_node(const struct cas_node *n, struct ls_out *o, const char *prefix) {
        if (o->json)
                return print_json(n, o, prefix);
        if (o->lng) {
                printf("%s %12llu ", cli_kind_word(n), (unsigned long long) n->size);
                if (n->kind == CAS_NODE_SYMLINK)
                        printf("%-47s ", "-");
                else
                        printf("%s ", CAS_DIGEST_B3(&n->digest));
        }
        if (prefix)
                fputs(prefix, stdout);
        fwrite(n->name, 1, n->name_len, stdout);
        if (n->kind == CAS_NODE_SYMLINK && o->lng) {
                fputs(" -> ", stdout);
                fwrite(n->target, 1, n->target_len, stdout);
        } else if (n->kind == CAS_NODE_DIRECTORY && !o->lng && !prefix)
                putchar('/');
        putchar('\n');
        return 0;
}

static int print_root(void *userdata, const struct cas_node *n) {
        return print_node(n, userdata, NULL);
}

/* Lists d and, with recursive, everything below it, each entry named by
 * its path relative to the listed directory. */
static int list_dir(struct cas_store *store, const struct cas_digest *digest, const char *prefix, struct ls_out *o) {
        _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
        int r;

        r = cas_dir_get(store->dirs, digest, &d);
        if (r < 0)
                return log_error_errno(r, "%s: cannot read directory %s: %m", prefix[0] ? prefix : ".",
                                       CAS_DIGEST_B3(digest));
        for (size_t i = 0; i < d->n_entries; i++) {
                r = print_node(&d->entries[i], o, o->recursive ? prefix : NULL);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; o->recursive && i < d->n_entries; i++) {
                const struct cas_node *e = &d->entries[i];
                _cleanup_free_ char *sub = NULL;

                if (e->kind != CAS_NODE_DIRECTORY)
                        continue;
                if (asprintf(&sub, "%s%s/", prefix, e->name) < 0)
                        return -ENOMEM;
                r = list_dir(store, &e->digest, sub, o);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int ls_one(struct cas_store *store, struct nix_pathinfo_service *pis, const char *arg, struct ls_out *o) {
        _cleanup_(nix_resolved_done) struct nix_resolved res = {};
        int r;

        if (!arg) {
                r = cas_root_list(store->roots, print_root, o);
                return r < 0 ? cli_failure(log_error_errno(r, "Failed to list roots: %m")) : 0;
        }
        r = cli_resolve(store, pis, arg, 0, &res);
        if (r < 0)
                return r; /* -EINVAL: a malformed NAME, a usage error */
        if (res.node.kind != CAS_NODE_DIRECTORY)
                return cli_failure(print_node(&res.node, o, NULL));
        return cli_failure(list_dir(store, &res.node.digest, "", o));
}

static int run_ls(int argc, char **argv) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                { "long", no_argument, NULL, 'l' },
                { "recursive", no_argument, NULL, 'R' },
                { "json", no_argument, NULL, 'j' },
                {},
        };
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        struct ls_out o = {};
        int opt, r;

        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "lR", opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                if (opt == 'l')
                        o.lng = true;
                else if (opt == 'R')
                        o.recursive = true;
                else if (opt == 'j')
                        o.json = true;
                else
                        return -EINVAL;
        }
        if (argc - optind > 1)
                return cli_usage_error("ls", "too many arguments");
        r = cli_store_open(0, &store, &pis);
        if (r < 0)
                return cli_failure(r);
        if (o.json)
                putchar('[');
        r = ls_one(store, pis, optind < argc ? argv[optind] : NULL, &o);
        if (o.json)
                printf("]\n");
        return r;
}

const struct cli_command cli_cmd_ls = {
        .name = "ls",
        .run = run_ls,
        .usage = "[-l|--long] [-R|--recursive] [--json] [NAME[/PATH]]",
        .help = "list the named roots, or a directory of the store (-l: kind, size, digest; -R: recursive;\n"
                "             --json: an array of entries)",
        .names_trees = true,
};

static void stat_text(const char *arg, const struct cas_node *n) {
        printf("path: %s\n", arg);
        switch (n->kind) {
        case CAS_NODE_DIRECTORY:
                printf("type: directory\ndigest: %s\nentries: %llu (recursive)\n", CAS_DIGEST_B3(&n->digest),
                       (unsigned long long) n->size);
                break;
        case CAS_NODE_FILE:
                printf("type: file\ndigest: %s\nsize: %llu\nexecutable: %s\n", CAS_DIGEST_B3(&n->digest),
                       (unsigned long long) n->size, n->executable ? "yes" : "no");
                break;
        case CAS_NODE_SYMLINK:
                printf("type: symlink\ntarget: %s\n", n->target);
                break;
        }
}

static int run_stat(int argc, char **argv) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                { "json", no_argument, NULL, 'j' },
                {},
        };
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        bool json = false;
        int opt, r;

        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                if (opt == 'j')
                        json = true;
                else
                        return -EINVAL;
        }
        if (optind >= argc)
                return cli_usage_error("stat", "missing NAME[/PATH]");
        r = cli_store_open(0, &store, &pis);
        if (r < 0)
                return cli_failure(r);
        if (json)
                putchar('[');
        for (int i = optind; i < argc; i++) {
                _cleanup_(nix_resolved_done) struct nix_resolved res = {};

                r = cli_resolve(store, pis, argv[i], 0, &res);
                if (r < 0)
                        break;
                if (!json) {
                        stat_text(argv[i], &res.node);
                        continue;
                }
                printf("%s{\"path\":", i > optind ? ",\n " : "");
                json_cstring(stdout, argv[i]);
                putchar(',');
                cli_json_node(stdout, &res.node);
                putchar('}');
        }
        if (json)
                printf("]\n");
        return r < 0 ? r : 0;
}

const struct cli_command cli_cmd_stat = {
        .name = "stat",
        .run = run_stat,
        .usage = "[--json] NAME[/PATH]...",
        .help = "show the kind, digest and size of nodes",
        .names_trees = true,
};
