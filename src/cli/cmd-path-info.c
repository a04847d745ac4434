/* castore path-info: show the PathInfo of store paths, as narinfo-style
 * text or as JSON shaped like "nix path-info --json". */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "store/nixbase32.h"
#include "store/pathinfosvc.h"
#include "util/base64.h"
#include "util/json.h"
#include "util/log.h"

struct pi_args {
        bool json;
        bool all;
        unsigned shown; /* JSON objects printed so far */
};

static void show_json(const struct nix_pathinfo *pi, struct pi_args *a) {
        char path[NIX_PATH_MAX + 1], b64[BASE64_ENCODED_LEN(NIX_SHA256_LEN) + 1], ca[NIX_CA_STR_MAX],
                sig[NIX_SIGNATURE_STR_MAX];

        nix_store_path_absolute(&pi->path, path);
        base64_encode(pi->nar_sha256, NIX_SHA256_LEN, b64);
        printf("%s{\"path\":", a->shown++ ? "," : "");
        json_cstring(stdout, path);
        printf(",\"narHash\":\"sha256-%s\",\"narSize\":%" PRIu64 ",\"references\":[", b64, pi->nar_size);
        for (size_t i = 0; i < pi->n_references; i++) {
                nix_store_path_absolute(&pi->references[i], path);
                if (i)
                        putchar(',');
                json_cstring(stdout, path);
        }
        putchar(']');
        if (pi->has_ca && nix_ca_to_string(pi->ca_type, pi->ca_digest, ca) >= 0)
                printf(",\"ca\":\"%s\"", ca);
        if (pi->has_deriver) {
                nix_store_path_absolute(&pi->deriver, path);
                printf(",\"deriver\":");
                json_cstring(stdout, path);
        }
        if (pi->n_signatures > 0) {
                printf(",\"signatures\":[");
                for (size_t i = 0; i < pi->n_signatures; i++) {
                        nix_signature_to_string(&pi->signatures[i], sig);
                        if (i)
                                putchar(',');
                        json_cstring(stdout, sig);
                }
                putchar(']');
        }
        printf(",\"node\":{");
        cli_json_node(stdout, &pi->node);
        printf("}}");
}

static void show_text(const struct nix_pathinfo *pi, struct pi_args *a) {
        char path[NIX_PATH_MAX + 1], base[NIX_BASENAME_MAX + 1], b32[64], ca[NIX_CA_STR_MAX],
                sig[NIX_SIGNATURE_STR_MAX];

        if (a->shown++)
                putchar('\n');
        nix_store_path_absolute(&pi->path, path);
        nixbase32_encode(pi->nar_sha256, NIX_SHA256_LEN, b32);
        printf("StorePath: %s\nNarHash: sha256:%s\nNarSize: %" PRIu64 "\nReferences:", path, b32, pi->nar_size);
        for (size_t i = 0; i < pi->n_references; i++) {
                nix_store_path_basename(&pi->references[i], base);
                printf(" %s", base);
        }
        putchar('\n');
        if (pi->has_deriver) {
                nix_store_path_basename(&pi->deriver, base);
                printf("Deriver: %s\n", base);
        }
        for (size_t i = 0; i < pi->n_signatures; i++) {
                nix_signature_to_string(&pi->signatures[i], sig);
                printf("Sig: %s\n", sig);
        }
        if (pi->has_ca && nix_ca_to_string(pi->ca_type, pi->ca_digest, ca) >= 0)
                printf("CA: %s\n", ca);
        if (pi->node.kind == CAS_NODE_SYMLINK)
                printf("Node: symlink -> %s\n", pi->node.target);
        else
                printf("Node: %s %s\n", cli_kind_name(pi->node.kind), CAS_DIGEST_B3(&pi->node.digest));
}

static int show(void *userdata, const struct nix_pathinfo *pi) {
        struct pi_args *a = userdata;

        if (a->json)
                show_json(pi, a);
        else
                show_text(pi, a);
        return 0;
}

/* A store path (a path inside one means that store path, as in Nix):
 * shown, or reported missing (in JSON too, as "valid": false). */
static int show_store_path(struct nix_pathinfo_service *pis, const struct nix_store_path *p, struct pi_args *a) {
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
        char path[NIX_PATH_MAX + 1];
        int r;

        r = nix_pathinfo_get_path(pis, p, &pi);
        if (r >= 0)
                return show(a, pi);
        nix_store_path_absolute(p, path);
        if (a->json) {
                printf("%s{\"path\":", a->shown++ ? "," : "");
                json_cstring(stdout, path);
                printf(",\"valid\":false}");
        }
        return r == -ENOENT ? log_error_errno(r, "%s: not in the store", path)
                            : cli_failure(log_error_errno(r, "%s: %m", path));
}

/* A store path, or a root name or directory digest: then every store
 * path whose tree it is. */
static int show_arg(struct cas_store *store, struct nix_pathinfo_service *pis, const char *arg, struct pi_args *a) {
        _cleanup_(nix_resolved_done) struct nix_resolved res = {};
        struct nix_store_path p;
        const char *sub;
        int r;

        if (nix_store_path_parse(arg, &p, &sub) >= 0)
                return show_store_path(pis, &p, a);
        r = cli_resolve(store, pis, arg, NIX_RESOLVE_NO_WALK, &res);
        if (r < 0)
                return r; /* -EINVAL: a malformed NAME, a usage error */
        r = nix_pathinfo_find_node(pis, &res.node, show, a);
        if (r == 0)
                return log_error_errno(-ENOENT, "%s: no store path holds this tree", arg);
        if (r < 0)
                return cli_failure(log_error_errno(r, "Failed to list store paths: %m"));
        return 0;
}

static int run_path_info(int argc, char **argv) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                { "json", no_argument, NULL, 'j' },
                { "all", no_argument, NULL, 'a' },
                {},
        };
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        struct pi_args a = {};
        int opt, r, ret = 0;

        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                switch (opt) {
                case 'j':
                        a.json = true;
                        break;
                case 'a':
                        a.all = true;
                        break;
                default:
                        return -EINVAL;
                }
        }
        if (a.all && optind < argc)
                return cli_usage_error("path-info", "--all takes no NAME");
        if (!a.all && optind >= argc)
                return cli_usage_error("path-info", "missing NAME");
        r = cli_store_open(0, &store, &pis);
        if (r < 0)
                return cli_failure(r);

        if (a.json)
                putchar('[');
        if (a.all) {
                r = nix_pathinfo_list_by_name(pis, show, &a);
                if (r < 0)
                        ret = cli_failure(log_error_errno(r, "Failed to list store paths: %m"));
        }
        for (int i = optind; i < argc; i++) {
                r = show_arg(store, pis, argv[i], &a);
                if (r < 0)
                        ret = r;
        }
        if (a.json)
                printf("]\n");
        return ret;
}

const struct cli_command cli_cmd_path_info = {
        .name = "path-info",
        .run = run_path_info,
        .usage = "NAME... | --all [--json]",
        .help = "show store paths' NAR hash, size, references, signatures, content address and castore\n"
                "             node; a root name or a directory digest shows the store paths holding that tree",
        .names_trees = true,
};
