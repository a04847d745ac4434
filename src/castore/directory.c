/* Directory and Node messages: building, validation, canonical encoding
 * through protobuf-c, and decoding of untrusted bytes. */
#include "castore/directory.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "castore.pb-c.h"

typedef Tvix__Castore__V1__Directory PbDirectory;
typedef Tvix__Castore__V1__DirectoryNode PbDirectoryNode;
typedef Tvix__Castore__V1__FileNode PbFileNode;
typedef Tvix__Castore__V1__SymlinkNode PbSymlinkNode;
typedef Tvix__Castore__V1__Node PbNode;

static const char *const verr_table[_CAS_VERR_MAX] = {
        [CAS_VERR_NONE] = "valid",
        [CAS_VERR_PROTOBUF] = "malformed protobuf message",
        [CAS_VERR_NAME_EMPTY] = "empty name",
        [CAS_VERR_NAME_DOT] = "name is . or ..",
        [CAS_VERR_NAME_TOO_LONG] = "name longer than 255 bytes",
        [CAS_VERR_NAME_NUL] = "name contains a NUL byte",
        [CAS_VERR_NAME_SLASH] = "name contains a slash",
        [CAS_VERR_UNSORTED] = "entries not sorted by name",
        [CAS_VERR_DUPLICATE] = "duplicate name",
        [CAS_VERR_DIGEST_LEN] = "digest is not 32 bytes",
        [CAS_VERR_TARGET_EMPTY] = "empty symlink target",
        [CAS_VERR_TARGET_TOO_LONG] = "symlink target longer than 4095 bytes",
        [CAS_VERR_TARGET_NUL] = "symlink target contains a NUL byte",
        [CAS_VERR_SIZE_OVERFLOW] = "directory size overflows",
        [CAS_VERR_SIZE_MISMATCH] = "directory size does not match its contents",
        [CAS_VERR_MISSING_CHILD] = "child directory not present",
        [CAS_VERR_NODE_EMPTY] = "node of no kind",
};

const char *cas_verr_str(enum cas_verr v) {
        if ((unsigned) v >= _CAS_VERR_MAX)
                return "unknown validation error";
        return verr_table[v];
}

static enum cas_verr fail(enum cas_verr *ret_why, enum cas_verr v) {
        if (ret_why)
                *ret_why = v;
        return v;
}

enum cas_verr cas_name_check(const char *name, size_t len) {
        if (len == 0)
                return CAS_VERR_NAME_EMPTY;
        if (len > CAS_NAME_MAX)
                return CAS_VERR_NAME_TOO_LONG;
        if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
                return CAS_VERR_NAME_DOT;
        if (memchr(name, 0, len))
                return CAS_VERR_NAME_NUL;
        if (memchr(name, '/', len))
                return CAS_VERR_NAME_SLASH;
        return CAS_VERR_NONE;
}

enum cas_verr cas_target_check(const char *target, size_t len) {
        if (len == 0)
                return CAS_VERR_TARGET_EMPTY;
        if (len > CAS_TARGET_MAX)
                return CAS_VERR_TARGET_TOO_LONG;
        if (memchr(target, 0, len))
                return CAS_VERR_TARGET_NUL;
        return CAS_VERR_NONE;
}

enum cas_verr cas_node_check(const struct cas_node *n, unsigned flags) {
        enum cas_verr v = CAS_VERR_NONE;

        if (!(flags & CAS_NODE_ALLOW_EMPTY_NAME) || n->name_len > 0)
                v = cas_name_check(n->name, n->name_len);
        if (v != CAS_VERR_NONE)
                return v;
        switch (n->kind) {
        case CAS_NODE_DIRECTORY:
        case CAS_NODE_FILE:
                return CAS_VERR_NONE;
        case CAS_NODE_SYMLINK:
                return cas_target_check(n->target, n->target_len);
        }
        return CAS_VERR_NODE_EMPTY;
}

int cas_name_compare(const char *a, size_t alen, const char *b, size_t blen) {
        int c = memcmp(a, b, MIN(alen, blen));

        if (c != 0)
                return c;
        return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int node_cmp(const void *x, const void *y) {
        const struct cas_node *a = x, *b = y;

        return cas_name_compare(a->name, a->name_len, b->name, b->name_len);
}

/* ---- canonical encoding ---- */

/* Fills protobuf-c structs that point into d (no copies) and packs them. */
int cas_directory_encode(const struct cas_directory *d, uint8_t **ret_buf, size_t *ret_len) {
        PbDirectory pd = TVIX__CASTORE__V1__DIRECTORY__INIT;
        _cleanup_free_ void *mem = NULL;
        PbDirectoryNode *dn;
        PbFileNode *fn;
        PbSymlinkNode *sn;
        void **ptrs;
        size_t nd = 0, nf = 0, ns = 0;
        uint8_t *buf;

        mem = calloc(1, d->n_dirs * sizeof(*dn) + d->n_files * sizeof(*fn) + d->n_symlinks * sizeof(*sn) +
                                d->n_entries * sizeof(void *) + 1);
        if (!mem)
                return -ENOMEM;
        ptrs = mem;
        dn = (PbDirectoryNode *) (ptrs + d->n_entries);
        fn = (PbFileNode *) (dn + d->n_dirs);
        sn = (PbSymlinkNode *) (fn + d->n_files);
        pd.directories = (PbDirectoryNode **) ptrs;
        pd.files = (PbFileNode **) (ptrs + d->n_dirs);
        pd.symlinks = (PbSymlinkNode **) (ptrs + d->n_dirs + d->n_files);

        for (size_t i = 0; i < d->n_entries; i++) {
                const struct cas_node *n = &d->entries[i];
                ProtobufCBinaryData name = { n->name_len, (uint8_t *) n->name };

                switch (n->kind) {
                case CAS_NODE_DIRECTORY:
                        tvix__castore__v1__directory_node__init(&dn[nd]);
                        dn[nd].name = name;
                        dn[nd].digest = (ProtobufCBinaryData){ CAS_DIGEST_LEN, (uint8_t *) n->digest.b };
                        dn[nd].size = n->size;
                        pd.directories[nd] = &dn[nd];
                        nd++;
                        break;
                case CAS_NODE_FILE:
                        tvix__castore__v1__file_node__init(&fn[nf]);
                        fn[nf].name = name;
                        fn[nf].digest = (ProtobufCBinaryData){ CAS_DIGEST_LEN, (uint8_t *) n->digest.b };
                        fn[nf].size = n->size;
                        fn[nf].executable = n->executable;
                        pd.files[nf] = &fn[nf];
                        nf++;
                        break;
                case CAS_NODE_SYMLINK:
                        tvix__castore__v1__symlink_node__init(&sn[ns]);
                        sn[ns].name = name;
                        sn[ns].target = (ProtobufCBinaryData){ n->target_len, (uint8_t *) n->target };
                        pd.symlinks[ns] = &sn[ns];
                        ns++;
                        break;
                }
        }
        pd.n_directories = nd;
        pd.n_files = nf;
        pd.n_symlinks = ns;

        size_t len = tvix__castore__v1__directory__get_packed_size(&pd);
        buf = malloc(len ? len : 1);
        if (!buf)
                return -ENOMEM;
        if (tvix__castore__v1__directory__pack(&pd, buf) != len) {
                free(buf);
                return -EIO;
        }
        *ret_buf = buf;
        *ret_len = len;
        return 0;
}

static int directory_compute_digest(struct cas_directory *d) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r;

        r = cas_directory_encode(d, &buf, &len);
        if (r < 0)
                return r;
        cas_digest_of(buf, len, &d->digest);
        return 0;
}

/* ---- building ---- */

static size_t node_strings_len(const struct cas_node *n) {
        return (size_t) n->name_len + 1 + (n->kind == CAS_NODE_SYMLINK ? (size_t) n->target_len + 1 : 0);
}

/* Copies nodes into one allocation; does not sort or validate. */
static int directory_alloc(const struct cas_node *nodes, size_t n, struct cas_directory **ret) {
        struct cas_directory *d;
        size_t strings = 0;
        char *p;

        if (n > SIZE_MAX / 4 / (sizeof(struct cas_node) + CAS_NAME_MAX + CAS_TARGET_MAX + 2))
                return -E2BIG;
        for (size_t i = 0; i < n; i++)
                strings += node_strings_len(&nodes[i]);
        d = malloc(sizeof(*d) + n * sizeof(struct cas_node) + strings);
        if (!d)
                return -ENOMEM;
        *d = (struct cas_directory){ .n_entries = n, .entries = (struct cas_node *) (d + 1) };
        p = (char *) (d->entries + n);
        for (size_t i = 0; i < n; i++) {
                struct cas_node *e = &d->entries[i];

                *e = nodes[i];
                memcpy(p, nodes[i].name, e->name_len);
                p[e->name_len] = 0;
                e->name = p;
                p += e->name_len + 1;
                if (e->kind == CAS_NODE_SYMLINK) {
                        memcpy(p, nodes[i].target, e->target_len);
                        p[e->target_len] = 0;
                        e->target = p;
                        p += e->target_len + 1;
                } else
                        e->target = NULL;
                if (e->kind != CAS_NODE_FILE)
                        e->executable = false;
                if (e->kind == CAS_NODE_SYMLINK) {
                        e->size = 0;
                        memset(&e->digest, 0, sizeof(e->digest));
                }
        }
        *ret = d;
        return 0;
}

/* Checks a sorted directory: node validity, uniqueness, size sum; counts
 * kinds and computes the size. */
static enum cas_verr directory_check_sorted(struct cas_directory *d) {
        uint64_t size = d->n_entries;

        d->n_dirs = d->n_files = d->n_symlinks = 0;
        for (size_t i = 0; i < d->n_entries; i++) {
                const struct cas_node *e = &d->entries[i];
                enum cas_verr v = cas_node_check(e, 0);

                if (v != CAS_VERR_NONE)
                        return v;
                if (i > 0 && node_cmp(&d->entries[i - 1], e) == 0)
                        return CAS_VERR_DUPLICATE;
                if (e->kind == CAS_NODE_DIRECTORY) {
                        if (__builtin_add_overflow(size, e->size, &size))
                                return CAS_VERR_SIZE_OVERFLOW;
                        d->n_dirs++;
                } else if (e->kind == CAS_NODE_FILE)
                        d->n_files++;
                else
                        d->n_symlinks++;
        }
        d->size = size;
        return CAS_VERR_NONE;
}

static int directory_finish(struct cas_directory *d, struct cas_directory **ret, enum cas_verr *ret_why) {
        _cleanup_(cas_directory_freep) struct cas_directory *owned = d;
        enum cas_verr v;
        int r;

        qsort(d->entries, d->n_entries, sizeof(struct cas_node), node_cmp);
        v = directory_check_sorted(d);
        if (v != CAS_VERR_NONE) {
                fail(ret_why, v);
                return -EBADMSG;
        }
        r = directory_compute_digest(d);
        if (r < 0)
                return r;
        if (ret_why)
                *ret_why = CAS_VERR_NONE;
        *ret = TAKE_PTR(owned);
        return 0;
}

int cas_directory_new(const struct cas_node *nodes, size_t n, struct cas_directory **ret,
                      enum cas_verr *ret_why) {
        struct cas_directory *d;
        int r;

        for (size_t i = 0; i < n; i++) {
                enum cas_verr v = cas_node_check(&nodes[i], 0);
                if (v != CAS_VERR_NONE) {
                        fail(ret_why, v);
                        return -EBADMSG;
                }
        }
        r = directory_alloc(nodes, n, &d);
        if (r < 0)
                return r;
        return directory_finish(d, ret, ret_why);
}

void cas_directory_free(struct cas_directory *d) {
        free(d);
}

const struct cas_node *cas_directory_find(const struct cas_directory *d, const char *name, size_t name_len) {
        size_t lo = 0, hi = d->n_entries;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const struct cas_node *e = &d->entries[mid];
                int c = cas_name_compare(name, name_len, e->name, e->name_len);

                if (c == 0)
                        return e;
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return NULL;
}

/* ---- decoding ---- */

/* Fills a node from a protobuf binary name; checks lengths that do not fit
 * our fields before truncation can happen. */
static enum cas_verr node_from_pb(struct cas_node *n, enum cas_node_kind kind, ProtobufCBinaryData name,
                                  ProtobufCBinaryData digest, ProtobufCBinaryData target) {
        *n = (struct cas_node){ .kind = kind };
        if (name.len > CAS_NAME_MAX)
                return CAS_VERR_NAME_TOO_LONG;
        n->name = (const char *) name.data;
        n->name_len = name.len;
        if (kind == CAS_NODE_SYMLINK) {
                if (target.len > CAS_TARGET_MAX)
                        return CAS_VERR_TARGET_TOO_LONG;
                n->target = (const char *) target.data;
                n->target_len = target.len;
        } else if (cas_digest_from_bytes(digest.data, digest.len, &n->digest) < 0)
                return CAS_VERR_DIGEST_LEN;
        return cas_node_check(n, 0);
}

static const ProtobufCBinaryData no_bytes = { 0, NULL };

/* Converts the three lists, checking that each is strictly ascending. */
static enum cas_verr directory_from_pb(const PbDirectory *pd, struct cas_node *nodes) {
        size_t k = 0;

        for (size_t i = 0; i < pd->n_directories; i++, k++) {
                const PbDirectoryNode *x = pd->directories[i];
                enum cas_verr v = node_from_pb(&nodes[k], CAS_NODE_DIRECTORY, x->name, x->digest, no_bytes);
                if (v != CAS_VERR_NONE)
                        return v;
                nodes[k].size = x->size;
        }
        for (size_t i = 0; i < pd->n_files; i++, k++) {
                const PbFileNode *x = pd->files[i];
                enum cas_verr v = node_from_pb(&nodes[k], CAS_NODE_FILE, x->name, x->digest, no_bytes);
                if (v != CAS_VERR_NONE)
                        return v;
                nodes[k].size = x->size;
                nodes[k].executable = x->executable;
        }
        for (size_t i = 0; i < pd->n_symlinks; i++, k++) {
                const PbSymlinkNode *x = pd->symlinks[i];
                enum cas_verr v = node_from_pb(&nodes[k], CAS_NODE_SYMLINK, x->name, no_bytes, x->target);
                if (v != CAS_VERR_NONE)
                        return v;
        }
        for (size_t i = 1; i < k; i++) {
                if (nodes[i].kind != nodes[i - 1].kind)
                        continue;
                int c = node_cmp(&nodes[i - 1], &nodes[i]);
                if (c == 0)
                        return CAS_VERR_DUPLICATE;
                if (c > 0)
                        return CAS_VERR_UNSORTED;
        }
        return CAS_VERR_NONE;
}

int cas_directory_decode(const void *buf, size_t len, unsigned flags, struct cas_directory **ret,
                         enum cas_verr *ret_why) {
        PbDirectory *pd;
        _cleanup_free_ struct cas_node *nodes = NULL;
        struct cas_directory *d = NULL;
        enum cas_verr v;
        size_t n;
        int r;

        (void) flags; /* child sizes are checked where children are known */
        pd = tvix__castore__v1__directory__unpack(NULL, len, buf);
        if (!pd) {
                fail(ret_why, CAS_VERR_PROTOBUF);
                return -EBADMSG;
        }
        n = pd->n_directories + pd->n_files + pd->n_symlinks;
        nodes = calloc(n ? n : 1, sizeof(*nodes));
        if (!nodes) {
                tvix__castore__v1__directory__free_unpacked(pd, NULL);
                return -ENOMEM;
        }
        v = directory_from_pb(pd, nodes);
        r = v == CAS_VERR_NONE ? directory_alloc(nodes, n, &d) : -EBADMSG;
        tvix__castore__v1__directory__free_unpacked(pd, NULL);
        if (r == -EBADMSG)
                fail(ret_why, v);
        if (r < 0)
                return r;
        return directory_finish(d, ret, ret_why);
}

/* ---- Node messages ---- */

int cas_node_encode(const struct cas_node *n, uint8_t **ret_buf, size_t *ret_len) {
        PbNode pn = TVIX__CASTORE__V1__NODE__INIT;
        PbDirectoryNode dn = TVIX__CASTORE__V1__DIRECTORY_NODE__INIT;
        PbFileNode fn = TVIX__CASTORE__V1__FILE_NODE__INIT;
        PbSymlinkNode sn = TVIX__CASTORE__V1__SYMLINK_NODE__INIT;
        ProtobufCBinaryData name = { n->name_len, (uint8_t *) n->name };
        ProtobufCBinaryData digest = { CAS_DIGEST_LEN, (uint8_t *) n->digest.b };
        uint8_t *buf;

        switch (n->kind) {
        case CAS_NODE_DIRECTORY:
                dn.name = name;
                dn.digest = digest;
                dn.size = n->size;
                pn.node_case = TVIX__CASTORE__V1__NODE__NODE_DIRECTORY;
                pn.directory = &dn;
                break;
        case CAS_NODE_FILE:
                fn.name = name;
                fn.digest = digest;
                fn.size = n->size;
                fn.executable = n->executable;
                pn.node_case = TVIX__CASTORE__V1__NODE__NODE_FILE;
                pn.file = &fn;
                break;
        case CAS_NODE_SYMLINK:
                sn.name = name;
                sn.target = (ProtobufCBinaryData){ n->target_len, (uint8_t *) n->target };
                pn.node_case = TVIX__CASTORE__V1__NODE__NODE_SYMLINK;
                pn.symlink = &sn;
                break;
        default:
                return -EINVAL;
        }
        size_t len = tvix__castore__v1__node__get_packed_size(&pn);
        buf = malloc(len ? len : 1);
        if (!buf)
                return -ENOMEM;
        if (tvix__castore__v1__node__pack(&pn, buf) != len) {
                free(buf);
                return -EIO;
        }
        *ret_buf = buf;
        *ret_len = len;
        return 0;
}

int cas_node_copy(const struct cas_node *n, struct cas_node *ret, void **ret_mem) {
        size_t len = node_strings_len(n);
        char *p = malloc(len);

        if (!p)
                return -ENOMEM;
        *ret = *n;
        if (n->name_len > 0)
                memcpy(p, n->name, n->name_len);
        p[n->name_len] = 0;
        ret->name = p;
        if (n->kind == CAS_NODE_SYMLINK) {
                memcpy(p + n->name_len + 1, n->target, n->target_len);
                p[n->name_len + 1 + n->target_len] = 0;
                ret->target = p + n->name_len + 1;
        } else
                ret->target = NULL;
        *ret_mem = p;
        return 0;
}

bool cas_node_same_content(const struct cas_node *a, const struct cas_node *b) {
        if (a->kind != b->kind)
                return false;
        if (a->kind == CAS_NODE_SYMLINK)
                return a->target_len == b->target_len && memcmp(a->target, b->target, a->target_len) == 0;
        return cas_digest_equal(&a->digest, &b->digest) && a->size == b->size &&
               (a->kind != CAS_NODE_FILE || a->executable == b->executable);
}

static enum cas_verr node_from_pb_node(const PbNode *pn, struct cas_node *n) {
        switch (pn->node_case) {
        case TVIX__CASTORE__V1__NODE__NODE_DIRECTORY:
                if (pn->directory->name.len > CAS_NAME_MAX)
                        return CAS_VERR_NAME_TOO_LONG;
                *n = (struct cas_node){ .kind = CAS_NODE_DIRECTORY, .size = pn->directory->size };
                n->name = (const char *) pn->directory->name.data;
                n->name_len = pn->directory->name.len;
                if (cas_digest_from_bytes(pn->directory->digest.data, pn->directory->digest.len, &n->digest) < 0)
                        return CAS_VERR_DIGEST_LEN;
                return CAS_VERR_NONE;
        case TVIX__CASTORE__V1__NODE__NODE_FILE:
                if (pn->file->name.len > CAS_NAME_MAX)
                        return CAS_VERR_NAME_TOO_LONG;
                *n = (struct cas_node){ .kind = CAS_NODE_FILE, .size = pn->file->size,
                                        .executable = pn->file->executable };
                n->name = (const char *) pn->file->name.data;
                n->name_len = pn->file->name.len;
                if (cas_digest_from_bytes(pn->file->digest.data, pn->file->digest.len, &n->digest) < 0)
                        return CAS_VERR_DIGEST_LEN;
                return CAS_VERR_NONE;
        case TVIX__CASTORE__V1__NODE__NODE_SYMLINK:
                if (pn->symlink->name.len > CAS_NAME_MAX)
                        return CAS_VERR_NAME_TOO_LONG;
                if (pn->symlink->target.len > CAS_TARGET_MAX)
                        return CAS_VERR_TARGET_TOO_LONG;
                *n = (struct cas_node){ .kind = CAS_NODE_SYMLINK };
                n->name = (const char *) pn->symlink->name.data;
                n->name_len = pn->symlink->name.len;
                n->target = (const char *) pn->symlink->target.data;
                n->target_len = pn->symlink->target.len;
                return CAS_VERR_NONE;
        default:
                return CAS_VERR_NODE_EMPTY;
        }
}

int cas_node_decode(const void *buf, size_t len, unsigned flags, struct cas_node *ret, void **ret_mem,
                    enum cas_verr *ret_why) {
        PbNode *pn;
        struct cas_node n;
        enum cas_verr v;
        int r;

        pn = tvix__castore__v1__node__unpack(NULL, len, buf);
        if (!pn) {
                fail(ret_why, CAS_VERR_PROTOBUF);
                return -EBADMSG;
        }
        v = node_from_pb_node(pn, &n);
        if (v == CAS_VERR_NONE)
                v = cas_node_check(&n, flags);
        if (v != CAS_VERR_NONE) {
                tvix__castore__v1__node__free_unpacked(pn, NULL);
                fail(ret_why, v);
                return -EBADMSG;
        }
        r = cas_node_copy(&n, ret, ret_mem);
        tvix__castore__v1__node__free_unpacked(pn, NULL);
        if (r >= 0 && ret_why)
                *ret_why = CAS_VERR_NONE;
        return r;
}
