/* castore info: what the store holds (store/info.h), as text or JSON. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "store/info.h"
#include "util/json.h"
#include "util/log.h"

/* The store's location: a local store's absolute path, else its URL. */
static char *location(const struct cas_store *s) {
        const char *url = s->url;

        if (strncmp(url, "local://", 8) == 0)
                url += 8;
        if (s->lmdb) {
                char *p = realpath(url, NULL);
                if (p)
                        return p;
        }
        return strdup(url);
}

static void print_text(const struct nix_store_info *in, const char *where, const char *cache) {
        const struct cas_usage *u = &in->cas;

        printf("store:        %s\n", where);
        if (cache)
                printf("cache:        %s\n", cache);
        printf("blobs:        %" PRIu64 ", %" PRIu64 " bytes", u->blobs, u->blob_bytes);
        if (u->blob_disk_known)
                printf(" (%" PRIu64 " bytes on disk with outboards)", u->blob_disk_bytes);
        printf("\ndirectories:  %" PRIu64 ", %" PRIu64 " bytes\n", u->dirs, u->dir_bytes);
        printf("named roots:  %" PRIu64 "\n", u->roots);
        printf("store paths:  %" PRIu64 ", NAR size %" PRIu64 " bytes\n", in->store_paths, in->nar_bytes);
        printf("trees:        %" PRIu64 " distinct, %" PRIu64 " bytes of files\n", in->trees, in->tree_bytes);
        if (u->blob_bytes > 0)
                printf("dedup ratio:  %.2f (bytes of files in trees / bytes of blobs)\n",
                       (double) in->tree_bytes / (double) u->blob_bytes);
        else
                printf("dedup ratio:  -\n");
}

static void print_json(const struct nix_store_info *in, const char *where, const char *cache) {
        const struct cas_usage *u = &in->cas;

        printf("{\"store\":");
        json_cstring(stdout, where);
        if (cache) {
                printf(",\"cache\":");
                json_cstring(stdout, cache);
        }
        printf(",\"blobs\":{\"count\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"diskBytes\":", u->blobs, u->blob_bytes);
        if (u->blob_disk_known)
                printf("%" PRIu64, u->blob_disk_bytes);
        else
                printf("null");
        printf("},\"directories\":{\"count\":%" PRIu64 ",\"bytes\":%" PRIu64 "}", u->dirs, u->dir_bytes);
        printf(",\"roots\":{\"count\":%" PRIu64 "}", u->roots);
        printf(",\"storePaths\":{\"count\":%" PRIu64 ",\"narBytes\":%" PRIu64 "}", in->store_paths, in->nar_bytes);
        printf(",\"trees\":{\"count\":%" PRIu64 ",\"fileBytes\":%" PRIu64 "}", in->trees, in->tree_bytes);
        if (u->blob_bytes > 0)
                printf(",\"dedupRatio\":%.4f}\n", (double) in->tree_bytes / (double) u->blob_bytes);
        else
                printf(",\"dedupRatio\":null}\n");
}

static int run_info(int argc, char **argv) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                { "json", no_argument, NULL, 'j' },
                {},
        };
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        _cleanup_free_ char *where = NULL, *cache = NULL;
        struct nix_store_info in;
        bool json = false;
        int opt, r;

        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                if (opt != 'j')
                        return -EINVAL;
                json = true;
        }
        if (optind < argc)
                return cli_usage_error("info", "takes no arguments");
        r = cli_store_open(0, &store, &pis);
        if (r < 0)
                return cli_failure(r);
        r = nix_store_info(store, pis, &in);
        if (r == -EOPNOTSUPP)
                return log_error_errno(r, "%s: its services cannot list what they hold (a gRPC daemon's); run "
                                          "castore info where the daemon's store is", store->url);
        if (r < 0 && r != -EBADMSG)
                return cli_failure(log_error_errno(r, "Failed to read %s: %m", store->url));
        where = location(store);
        if (store->cache)
                cache = location(store->cache);
        if (!where || (store->cache && !cache))
                return log_error_errno(-ENOMEM, "Out of memory");
        if (json)
                print_json(&in, where, cache);
        else
                print_text(&in, where, cache);
        if (r == -EBADMSG)
                return log_error_errno(r, "Corrupt records were skipped (castore verify tells which)");
        return 0;
}

const struct cli_command cli_cmd_info = {
        .name = "info",
        .run = run_info,
        .usage = "[--json]",
        .help = "what the store holds: blobs (bytes, and bytes on disk with outboards), directories, named\n"
                "             roots, store paths (NAR bytes), the distinct trees they name with the bytes of their\n"
                "             files (each occurrence counted), the dedup ratio (those bytes / blob bytes), where it is",
};
