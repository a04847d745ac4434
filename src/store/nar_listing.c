/* NAR listings (nar_listing.h): a walk over the castore tree that writes
 * JSON and keeps the NAR offset by adding up token sizes. */
#include "store/nar_listing.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/nar.h"
#include "util/json.h"

/* Bytes a NAR string token of len bytes takes: length, bytes, padding. */
static uint64_t tok(uint64_t len) {
        return 8 + ((len + 7) & ~(uint64_t) 7);
}

#define TOK(s) tok(sizeof(s) - 1)

static int list_node(struct cas_dir_service *dirs, const struct cas_node *n, unsigned depth, FILE *f,
                     uint64_t *off);

static int list_directory(struct cas_dir_service *dirs, const struct cas_node *n, unsigned depth, FILE *f,
                          uint64_t *off) {
        _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
        int r;

        if (depth >= NAR_DEPTH_MAX)
                return -ELOOP;
        r = cas_dir_get(dirs, &n->digest, &d);
        if (r < 0)
                return r;
        fputs("{\"type\":\"directory\",\"entries\":{", f);
        *off += TOK("(") + TOK("type") + TOK("directory");
        for (size_t i = 0; i < d->n_entries; i++) {
                const struct cas_node *e = &d->entries[i];

                if (i > 0)
                        fputc(',', f);
                json_string(f, e->name, e->name_len);
                fputc(':', f);
                *off += TOK("entry") + TOK("(") + TOK("name") + tok(e->name_len) + TOK("node");
                r = list_node(dirs, e, depth + 1, f, off);
                if (r < 0)
                        return r;
                *off += TOK(")");
        }
        fputs("}}", f);
        *off += TOK(")");
        return 0;
}

static int list_node(struct cas_dir_service *dirs, const struct cas_node *n, unsigned depth, FILE *f,
                     uint64_t *off) {
        switch (n->kind) {
        case CAS_NODE_FILE:
                *off += TOK("(") + TOK("type") + TOK("regular") + (n->executable ? TOK("executable") + tok(0) : 0) +
                        TOK("contents") + 8;
                fprintf(f, "{\"type\":\"regular\",\"size\":%" PRIu64 "%s,\"narOffset\":%" PRIu64 "}", n->size,
                        n->executable ? ",\"executable\":true" : "", *off);
                *off += ((n->size + 7) & ~(uint64_t) 7) + TOK(")");
                return 0;
        case CAS_NODE_SYMLINK:
                fputs("{\"type\":\"symlink\",\"target\":", f);
                json_string(f, n->target, n->target_len);
                fputc('}', f);
                *off += TOK("(") + TOK("type") + TOK("symlink") + TOK("target") + tok(n->target_len) + TOK(")");
                return 0;
        case CAS_NODE_DIRECTORY:
                return list_directory(dirs, n, depth, f, off);
        }
        return -EINVAL;
}

int nar_listing_json(struct cas_dir_service *dirs, const struct cas_node *root, char **ret, size_t *ret_len) {
        uint64_t off = TOK("nix-archive-1");
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        int r;

        if (!f)
                return -ENOMEM;
        fputs("{\"version\":1,\"root\":", f);
        r = list_node(dirs, root, 0, f, &off);
        fputc('}', f);
        if ((ferror(f) | fclose(f)) && r >= 0)
                r = -ENOMEM;
        if (r < 0) {
                free(buf);
                return r;
        }
        *ret = buf;
        *ret_len = len;
        return 0;
}
