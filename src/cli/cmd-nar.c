/* castore nar: Nix archives of stored trees.
 *   nar dump NAME[/sub/path]        the NAR on stdout (as nix-store --dump)
 *   nar hash NAME[/sub/path]        sha256:<nixbase32> (as nix-store -q --hash)
 *                                   NAME: a root, a store path or a digest
 *   nar import FILE|- --name NAME   ingest a NAR, register the "source" path
 *                                   nix-store --add would give, print it */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "store/nix_import.h"
#include "store/nixbase32.h"
#include "store/pathinfosvc.h"
#include "util/io.h"
#include "util/log.h"

static int write_fd(void *userdata, const void *buf, size_t len) {
        int r = loop_write(*(int *) userdata, buf, len);

        if (r < 0)
                return log_error_errno(r, "Failed to write the NAR: %m");
        return 0;
}

static ssize_t read_fd(void *userdata, void *buf, size_t len) {
        int fd = *(int *) userdata;
        ssize_t n = read(fd, buf, len);

        return n < 0 ? negative_errno() : n;
}

static int open_services(unsigned flags, struct cas_store **ret_store, struct nix_pathinfo_service **ret_pis) {
        int r;

        r = cli_store_open(flags, ret_store, ret_pis);
        if (r < 0)
                return r;
        return 0;
}

/* The options of the subcommands: --size for hash, --name for import. */
struct nar_args {
        const char *name;
        bool size;
};

static int parse(const char *cmd, int argc, char **argv, struct nar_args *a) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                { "name", required_argument, NULL, 'n' },
                { "size", no_argument, NULL, 's' },
                {},
        };
        int opt;

        optind = 0;
        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "n:", opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                switch (opt) {
                case 'n':
                        if (strcmp(cmd, "nar import") != 0)
                                return cli_usage_error(cmd, "--name only applies to \"nar import\"");
                        a->name = optarg;
                        break;
                case 's':
                        if (strcmp(cmd, "nar hash") != 0)
                                return cli_usage_error(cmd, "--size only applies to \"nar hash\"");
                        a->size = true;
                        break;
                default:
                        return -EINVAL;
                }
        }
        if (argc - optind != 1)
                return cli_usage_error(cmd, argc - optind < 1 ? "missing argument" : "too many arguments");
        return 0;
}

static int nar_dump(int argc, char **argv) {
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        _cleanup_(nix_resolved_done) struct nix_resolved res = {};
        struct nar_args a = {};
        int out = STDOUT_FILENO, r;

        r = parse("nar dump", argc, argv, &a);
        if (r < 0)
                return r;
        r = open_services(0, &store, &pis);
        if (r < 0)
                return cli_failure(r);
        r = cli_resolve(store, pis, argv[optind], 0, &res);
        if (r < 0)
                return r;
        r = nar_render(store->blobs, store->dirs, &res.node, NAR_RENDER_NO_SHA256, write_fd, &out, NULL, NULL);
        if (r < 0)
                return cli_failure(log_error_errno(r, "Failed to dump %s (output is incomplete): %m", argv[optind]));
        return 0;
}

static int nar_hash(int argc, char **argv) {
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        _cleanup_(nix_resolved_done) struct nix_resolved res = {};
        const struct nix_pathinfo *pi;
        struct nar_args a = {};
        uint8_t sha[NIX_SHA256_LEN];
        char b32[64];
        uint64_t size;
        int r;

        r = parse("nar hash", argc, argv, &a);
        if (r < 0)
                return r;
        r = open_services(0, &store, &pis);
        if (r < 0)
                return cli_failure(r);
        r = cli_resolve(store, pis, argv[optind], 0, &res);
        if (r < 0)
                return r;
        /* the registered figures of a whole store path, checked below */
        pi = res.kind == NIX_NAME_STORE_PATH && !res.subpath[0] ? res.pathinfo : NULL;
        /* Computed from the tree, not taken from the record: a record that
         * disagrees with its tree is an error worth reporting. */
        r = nar_render(store->blobs, store->dirs, &res.node, 0, NULL, NULL, &size, sha);
        if (r < 0)
                return cli_failure(log_error_errno(r, "Failed to hash %s: %m", argv[optind]));
        if (pi && (pi->nar_size != size || memcmp(pi->nar_sha256, sha, NIX_SHA256_LEN) != 0))
                return log_error_errno(-EBADMSG, "%s: NAR hash or size differs from the registered one", argv[optind]);
        nixbase32_encode(sha, NIX_SHA256_LEN, b32);
        printf("sha256:%s\n", b32);
        if (a.size)
                printf("%" PRIu64 "\n", size);
        return 0;
}

static int nar_import(int argc, char **argv) {
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        _cleanup_close_ int fd = -1;
        struct nar_args a = {};
        struct nix_store_path p;
        char path[NIX_PATH_MAX + 1];
        const char *file;
        int in, r;

        r = parse("nar import", argc, argv, &a);
        if (r < 0)
                return r;
        file = argv[optind];
        if (!a.name)
                return cli_usage_error("nar import", "missing --name (the store path name)");
        if (nix_name_check(a.name, strlen(a.name)) < 0)
                return cli_usage_error("nar import", "invalid store path name \"%s\" (1-211 characters of "
                                                     "A-Za-z0-9+-._?=, not . or ..)", a.name);
        if (strcmp(file, "-") == 0)
                in = STDIN_FILENO;
        else {
                fd = open(file, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        return log_error_errno(negative_errno(), "%s: %m", file);
                in = fd;
        }
        r = open_services(CAS_STORE_CREATE, &store, &pis);
        if (r < 0)
                return cli_failure(r);
        r = nix_import_nar(store, pis, a.name, read_fd, &in, file, 0, &p);
        if (r < 0)
                return cli_failure(r);
        nix_store_path_absolute(&p, path);
        printf("%s\n", path);
        return 0;
}

static int run_nar(int argc, char **argv) {
        static const struct {
                const char *name;
                int (*run)(int argc, char **argv);
        } subs[] = {
                { "dump", nar_dump },
                { "hash", nar_hash },
                { "import", nar_import },
        };

        if (argc < 2)
                return cli_usage_error("nar", "missing subcommand (dump, hash or import)");
        for (size_t i = 0; i < ELEMENTSOF(subs); i++)
                if (strcmp(argv[1], subs[i].name) == 0)
                        return subs[i].run(argc - 1, argv + 1);
        return cli_usage_error("nar", "unknown subcommand \"%s\" (dump, hash or import)", argv[1]);
}

const struct cli_command cli_cmd_nar = {
        .name = "nar",
        .run = run_nar,
        .usage = "dump NAME[/PATH] | hash NAME[/PATH] [--size] | import FILE|- --name NAME",
        .help = "Nix archives: write one (as nix-store --dump), hash one (as nix-store -q --hash), ingest one",
        .names_trees = true,
};
