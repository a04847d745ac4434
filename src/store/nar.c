/* NAR rendering: walks a castore tree and streams the NAR bytes through a
 * fixed-size buffer to a sink, hashing them as they go (see nar.h). */
#include "store/nar.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "castore/localfs.h"
#include "util/io.h"
#include "util/log.h"
#include "store/nar_prefetch.h"

#define RENDER_BUF_SIZE (512 * 1024)
/* On-disk blobs up to this size are read once into a scratch buffer,
 * verified there and emitted from it: one read, and nothing can change
 * between the check and the output.  Larger ones are verified, then read
 * a second time as they are emitted. */
#define WHOLE_BLOB_MAX NAR_PREFETCH_FILE_MAX

struct renderer {
        struct cas_blob_service *blobs;
        struct cas_dir_service *dirs;
        nar_write_fn write;
        void *userdata;
        bool hash;
        struct nix_sha256 sha;
        uint64_t size;   /* bytes emitted so far (flushed or buffered) */
        uint8_t *buf;    /* RENDER_BUF_SIZE bytes */
        size_t len;      /* bytes buffered */
        uint8_t *scratch; /* WHOLE_BLOB_MAX bytes, allocated on first use */
        struct nar_prefetch *pf; /* read-ahead of the files, or NULL */
};

static int flush(struct renderer *rd) {
        int r;

        if (rd->len == 0)
                return 0;
        if (rd->hash)
                nix_sha256_update(&rd->sha, rd->buf, rd->len);
        if (rd->write) {
                r = rd->write(rd->userdata, rd->buf, rd->len);
                if (r < 0)
                        return r;
        }
        rd->len = 0;
        return 0;
}

/* Hands len bytes to the hash and the sink directly, after what is
 * buffered: no copy through the staging buffer. */
static int emit_direct(struct renderer *rd, const void *data, size_t len) {
        int r;

        r = flush(rd);
        if (r < 0)
                return r;
        if (rd->hash)
                nix_sha256_update(&rd->sha, data, len);
        if (rd->write) {
                r = rd->write(rd->userdata, data, len);
                if (r < 0)
                        return r;
        }
        rd->size += len;
        return 0;
}

static int emit(struct renderer *rd, const void *data, size_t len) {
        const uint8_t *p = data;
        int r;

        if (len >= RENDER_BUF_SIZE)
                return emit_direct(rd, data, len);
        while (len > 0) {
                size_t n = MIN(len, RENDER_BUF_SIZE - rd->len);

                memcpy(rd->buf + rd->len, p, n);
                rd->len += n;
                rd->size += n;
                p += n;
                len -= n;
                if (rd->len == RENDER_BUF_SIZE) {
                        r = flush(rd);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int emit_u64(struct renderer *rd, uint64_t v) {
        uint8_t le[8];

        for (int i = 0; i < 8; i++)
                le[i] = (uint8_t) (v >> (8 * i));
        return emit(rd, le, sizeof(le));
}

static int emit_padding(struct renderer *rd, uint64_t len) {
        static const uint8_t zero[8];

        return emit(rd, zero, (8 - len % 8) % 8);
}

static int emit_bytes(struct renderer *rd, const void *s, size_t len) {
        int r = emit_u64(rd, len);

        if (r >= 0)
                r = emit(rd, s, len);
        if (r >= 0)
                r = emit_padding(rd, len);
        return r;
}

#define emit_str(rd, s) emit_bytes((rd), (s), sizeof(s) - 1)

/* Emits bytes of a blob held in memory: verified first, then copied from
 * the same bytes. */
static int emit_verified(struct renderer *rd, const struct cas_digest *want, const uint8_t *data, size_t len) {
        struct cas_digest d;

        cas_digest_of(data, len, &d);
        if (!cas_digest_equal(&d, want))
                return log_error_errno(-EBADMSG, "Blob %s does not match its digest", CAS_DIGEST_HEX(want));
        return emit(rd, data, len);
}

/* Reads a small on-disk blob whole into the scratch buffer. */
static int read_whole(struct renderer *rd, struct cas_blob_reader *b) {
        ssize_t n;

        if (!rd->scratch) {
                rd->scratch = malloc(WHOLE_BLOB_MAX);
                if (!rd->scratch)
                        return -ENOMEM;
        }
        n = cas_blob_pread_full(b, rd->scratch, (size_t) b->size, 0);
        if (n < 0)
                return log_error_errno((int) n, "Failed to read blob %s: %m", CAS_DIGEST_HEX(&b->digest));
        if ((uint64_t) n < b->size)
                return log_error_errno(-EBADMSG, "Blob %s is shorter than its size %" PRIu64,
                                       CAS_DIGEST_HEX(&b->digest), b->size);
        return 0;
}

/* Streams a blob read with pread through the buffer, hashing what is read
 * if hash.  The caller has verified it already when output escapes;
 * hashing again catches a file that changed between the two reads. */
static int emit_streamed_blob(struct renderer *rd, struct cas_blob_reader *b, bool hash) {
        struct cas_hasher h;
        struct cas_digest d;
        uint64_t off = 0;
        int r;

        cas_hasher_init(&h);
        while (off < b->size) {
                size_t want;
                ssize_t n;

                if (rd->len == RENDER_BUF_SIZE) {
                        r = flush(rd);
                        if (r < 0)
                                return r;
                }
                want = (size_t) MIN((uint64_t) (RENDER_BUF_SIZE - rd->len), b->size - off);
                n = cas_blob_pread(b, rd->buf + rd->len, want, off);
                if (n < 0)
                        return log_error_errno((int) n, "Failed to read blob %s: %m", CAS_DIGEST_HEX(&b->digest));
                if (n == 0)
                        return log_error_errno(-EBADMSG, "Blob %s is shorter than its size %" PRIu64,
                                               CAS_DIGEST_HEX(&b->digest), b->size);
                if (hash)
                        cas_hasher_update(&h, rd->buf + rd->len, (size_t) n);
                rd->len += (size_t) n;
                rd->size += (uint64_t) n;
                off += (uint64_t) n;
        }
        if (!hash)
                return 0;
        cas_hasher_final(&h, &d);
        if (!cas_digest_equal(&d, &b->digest))
                return log_error_errno(-EBADMSG, "Blob %s changed or does not match its digest",
                                       CAS_DIGEST_HEX(&b->digest));
        return 0;
}

static int emit_file_header(struct renderer *rd, const struct cas_node *n) {
        int r;

        r = emit_str(rd, "regular");
        if (r >= 0 && n->executable) {
                r = emit_str(rd, "executable");
                if (r >= 0)
                        r = emit_str(rd, "");
        }
        if (r >= 0)
                r = emit_str(rd, "contents");
        if (r >= 0)
                r = emit_u64(rd, n->size);
        return r;
}

/* Streams a large blob the read-ahead verified.  Its file is not hashed
 * again: a ctime still the one from before the check shows that nothing
 * wrote to it since. */
static int emit_fetched_reader(struct renderer *rd, const struct nar_fetched *f) {
        struct cas_blob_reader *b = f->reader;
        struct stat st;
        int r;

        if (!f->verified) /* hash only: nothing escapes before the check */
                return emit_streamed_blob(rd, b, true);
        if (b->data)
                return emit(rd, b->data, (size_t) b->size);
        if (b->fd < 0 || f->ctime_ns < 0)
                return emit_streamed_blob(rd, b, true);
        r = emit_streamed_blob(rd, b, false);
        if (r < 0)
                return r;
        if (fstat(b->fd, &st) < 0)
                return log_error_errno(negative_errno(), "Failed to stat blob %s: %m", CAS_DIGEST_HEX(&b->digest));
        if (timespec_ns(st.st_ctim) != f->ctime_ns)
                return log_error_errno(-EBADMSG, "Blob %s changed while it was read", CAS_DIGEST_HEX(&b->digest));
        return 0;
}

/* A file the read-ahead verified: 1 when rendered, 0 when the read-ahead
 * does not have it. */
static int render_prefetched(struct renderer *rd, const struct cas_node *n) {
        struct nar_fetched f;
        int r;

        r = nar_prefetch_take(rd->pf, n, &f);
        if (r <= 0)
                return r;
        r = emit_file_header(rd, n);
        if (r >= 0)
                r = f.reader ? emit_fetched_reader(rd, &f) : emit(rd, f.data, (size_t) n->size);
        if (r >= 0)
                r = emit_padding(rd, n->size);
        free(f.data);
        cas_blob_reader_close(f.reader);
        return r < 0 ? r : 1;
}

static int render_file(struct renderer *rd, const struct cas_node *n) {
        _cleanup_(cas_blob_reader_closep) struct cas_blob_reader *b = NULL;
        int r;

        if (rd->pf) {
                r = render_prefetched(rd, n);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        r = cas_blob_open(rd->blobs, &n->digest, &b);
        if (r == -ENOENT)
                return log_error_errno(r, "Blob %s is missing", CAS_DIGEST_HEX(&n->digest));
        if (r < 0)
                return log_error_errno(r, "Failed to open blob %s: %m", CAS_DIGEST_HEX(&n->digest));
        if (b->size != n->size)
                return log_error_errno(-EBADMSG, "Blob %s has %" PRIu64 " bytes, the file node says %" PRIu64,
                                       CAS_DIGEST_HEX(&n->digest), b->size, n->size);
        if (!b->data && rd->write && b->size > WHOLE_BLOB_MAX) {
                /* verify before any byte of it can escape */
                r = cas_blob_reader_verify(b);
                if (r < 0)
                        return log_error_errno(r, "Blob %s does not verify: %m", CAS_DIGEST_HEX(&n->digest));
        } else if (!b->data && rd->write) {
                r = read_whole(rd, b);
                if (r < 0)
                        return r;
        }

        r = emit_file_header(rd, n);
        if (r < 0)
                return r;
        if (b->data)
                r = emit_verified(rd, &b->digest, b->data, (size_t) b->size);
        else if (rd->write && b->size <= WHOLE_BLOB_MAX)
                r = emit_verified(rd, &b->digest, rd->scratch, (size_t) b->size);
        else
                r = emit_streamed_blob(rd, b, true);
        if (r < 0)
                return r;
        return emit_padding(rd, n->size);
}

static int render_node(struct renderer *rd, const struct cas_node *n, unsigned depth);

static int render_directory(struct renderer *rd, const struct cas_node *n, unsigned depth) {
        _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
        int r;

        if (depth >= NAR_DEPTH_MAX)
                return log_error_errno(-ELOOP, "Directories nested deeper than %d levels", NAR_DEPTH_MAX);
        r = cas_dir_get(rd->dirs, &n->digest, &d);
        if (r == -ENOENT)
                return log_error_errno(r, "Directory %s is missing", CAS_DIGEST_HEX(&n->digest));
        if (r < 0)
                return log_error_errno(r, "Failed to get directory %s: %m", CAS_DIGEST_HEX(&n->digest));
        if (!cas_size_ok(n->size, d->size, 0))
                return log_error_errno(-EBADMSG, "Directory %s has %" PRIu64 " entries, its node claims %" PRIu64,
                                       CAS_DIGEST_HEX(&n->digest), d->size, n->size);

        r = emit_str(rd, "directory");
        for (size_t i = 0; r >= 0 && i < d->n_entries; i++) {
                const struct cas_node *e = &d->entries[i];

                r = emit_str(rd, "entry");
                if (r >= 0)
                        r = emit_str(rd, "(");
                if (r >= 0)
                        r = emit_str(rd, "name");
                if (r >= 0)
                        r = emit_bytes(rd, e->name, e->name_len);
                if (r >= 0)
                        r = emit_str(rd, "node");
                if (r >= 0)
                        r = render_node(rd, e, depth + 1);
                if (r >= 0)
                        r = emit_str(rd, ")");
        }
        return r;
}

static int render_node(struct renderer *rd, const struct cas_node *n, unsigned depth) {
        int r;

        r = emit_str(rd, "(");
        if (r >= 0)
                r = emit_str(rd, "type");
        if (r < 0)
                return r;
        switch (n->kind) {
        case CAS_NODE_FILE:
                r = render_file(rd, n);
                break;
        case CAS_NODE_SYMLINK:
                r = emit_str(rd, "symlink");
                if (r >= 0)
                        r = emit_str(rd, "target");
                if (r >= 0)
                        r = emit_bytes(rd, n->target, n->target_len);
                break;
        case CAS_NODE_DIRECTORY:
                r = render_directory(rd, n, depth);
                break;
        default:
                return log_error_errno(-EINVAL, "Node of unknown kind %d", (int) n->kind);
        }
        if (r < 0)
                return r;
        return emit_str(rd, ")");
}

int nar_render(struct cas_blob_service *blobs, struct cas_dir_service *dirs, const struct cas_node *root,
               unsigned flags, nar_write_fn write, void *userdata, uint64_t *ret_size,
               uint8_t ret_sha256[NIX_SHA256_LEN]) {
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ uint8_t *scratch = NULL;
        struct renderer rd = {
                .blobs = blobs,
                .dirs = dirs,
                .write = write,
                .userdata = userdata,
                .hash = !(flags & NAR_RENDER_NO_SHA256),
        };
        uint8_t sha[NIX_SHA256_LEN];
        int r;

        if (!blobs || !dirs || !root)
                return -EINVAL;
        if (root->kind == CAS_NODE_SYMLINK && cas_target_check(root->target, root->target_len) != CAS_VERR_NONE)
                return log_error_errno(-EBADMSG, "Invalid symlink target in root node");
        buf = malloc(RENDER_BUF_SIZE);
        if (!buf)
                return -ENOMEM;
        rd.buf = buf;
        if (rd.hash) {
                r = nix_sha256_init(&rd.sha);
                if (r < 0)
                        return r;
        }
        /* without the read-ahead (no memory, no threads) it renders alone */
        if (root->kind != CAS_NODE_SYMLINK && !(flags & NAR_RENDER_SERIAL) &&
            nar_prefetch_start(blobs, dirs, root, write != NULL, 0, &rd.pf) < 0)
                rd.pf = NULL;
        r = emit_str(&rd, "nix-archive-1");
        if (r >= 0)
                r = render_node(&rd, root, 0);
        nar_prefetch_stop(rd.pf);
        scratch = rd.scratch;
        if (r >= 0)
                r = flush(&rd);
        if (rd.hash) {
                if (r >= 0)
                        r = nix_sha256_final(&rd.sha, sha);
                else
                        nix_sha256_done(&rd.sha);
        }
        if (r < 0)
                return r;
        if (ret_size)
                *ret_size = rd.size;
        if (rd.hash && ret_sha256)
                memcpy(ret_sha256, sha, NIX_SHA256_LEN);
        return 0;
}

/* ---- NAR of a local tree (hash only), with its castore digests ---- */

#define LOCAL_CHUNK (1024 * 1024)

struct local_hasher {
        struct renderer rd; /* no sink: size and SHA-256 only */
        bool skip_special;
        uint8_t *chunk;     /* LOCAL_CHUNK bytes */
};

static int local_node(struct local_hasher *h, int dfd, const char *name, const char *path, unsigned depth,
                      struct cas_node *ret, char **ret_target);

static int local_file(struct local_hasher *h, int dfd, const char *name, const char *path, struct cas_node *ret) {
        _cleanup_close_ int fd = -1;
        struct cas_hasher b3;
        struct stat st;
        uint64_t got = 0;
        int r;

        fd = cas_local_open_file(dfd, name, &st);
        if (fd == -EAGAIN)
                return log_error_errno(-ESTALE, "%s: changed while being read", path);
        if (fd < 0)
                return log_error_errno(fd, "%s: %m", path);
        *ret = (struct cas_node){ .kind = CAS_NODE_FILE, .executable = st.st_mode & S_IXUSR,
                                  .size = (uint64_t) st.st_size };
        r = emit_str(&h->rd, "regular");
        if (r >= 0 && ret->executable) {
                r = emit_str(&h->rd, "executable");
                if (r >= 0)
                        r = emit_str(&h->rd, "");
        }
        if (r >= 0)
                r = emit_str(&h->rd, "contents");
        if (r >= 0)
                r = emit_u64(&h->rd, ret->size);
        if (r < 0)
                return r;
        cas_hasher_init(&b3);
        for (;;) {
                ssize_t n = loop_read(fd, h->chunk, LOCAL_CHUNK);
                if (n < 0)
                        return log_error_errno((int) n, "%s: %m", path);
                if (n == 0)
                        break;
                got += (uint64_t) n;
                if (got > ret->size)
                        break;
                cas_hasher_update(&b3, h->chunk, (size_t) n);
                r = emit(&h->rd, h->chunk, (size_t) n);
                if (r < 0)
                        return r;
        }
        if (got != ret->size)
                return log_error_errno(-ESTALE, "%s: changed size while being read", path);
        cas_hasher_final(&b3, &ret->digest);
        return emit_padding(&h->rd, ret->size);
}

static int local_entry(struct local_hasher *h, int dfd, const char *name, const char *path, unsigned depth,
                       struct cas_node *ret, char **ret_target) {
        int r;

        r = emit_str(&h->rd, "entry");
        if (r >= 0)
                r = emit_str(&h->rd, "(");
        if (r >= 0)
                r = emit_str(&h->rd, "name");
        if (r >= 0)
                r = emit_bytes(&h->rd, name, strlen(name));
        if (r >= 0)
                r = emit_str(&h->rd, "node");
        if (r >= 0)
                r = local_node(h, dfd, name, path, depth, ret, ret_target);
        if (r >= 0)
                r = emit_str(&h->rd, ")");
        return r;
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b); /* bytewise */
}

/* Children in name order, special files left out (or refused); builds the
 * Directory from their nodes for the digest and size. */
static int local_dir(struct local_hasher *h, int dfd, const char *name, const char *path, unsigned depth,
                     struct cas_node *ret) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ struct cas_node *nodes = NULL;
        _cleanup_free_ char **targets = NULL;
        _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
        char **names = NULL;
        size_t n = 0, kept = 0;
        int r;

        if (depth >= NAR_DEPTH_MAX)
                return log_error_errno(-ELOOP, "%s: directories nested deeper than %d levels", path, NAR_DEPTH_MAX);
        fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(negative_errno(), "%s: %m", path);
        r = cas_local_list(fd, &names, &n);
        if (r < 0)
                return log_error_errno(r, "%s: %m", path);
        if (n > 1) /* an empty directory has no array at all */
                qsort(names, n, sizeof(char *), name_cmp);
        nodes = calloc(n ? n : 1, sizeof(*nodes));
        targets = calloc(n ? n : 1, sizeof(*targets));
        r = nodes && targets ? emit_str(&h->rd, "directory") : -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ char *sub = NULL;
                struct stat st;

                if (asprintf(&sub, "%s/%s", path, names[i]) < 0) {
                        r = -ENOMEM;
                        break;
                }
                if (fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = log_error_errno(negative_errno(), "%s: %m", sub);
                        break;
                }
                if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
                        if (h->skip_special)
                                continue;
                        r = log_error_errno(-EINVAL, "%s: %s refused", sub, cas_local_kind(st.st_mode));
                        break;
                }
                r = local_entry(h, fd, names[i], sub, depth + 1, &nodes[kept], &targets[kept]);
                if (r < 0)
                        break;
                nodes[kept].name = names[i];
                nodes[kept].name_len = strlen(names[i]);
                kept++;
        }
        if (r >= 0) {
                enum cas_verr why;
                r = cas_directory_new(nodes, kept, &d, &why);
                if (r == -EBADMSG)
                        log_error("%s: %s", path, cas_verr_str(why));
        }
        if (r >= 0)
                *ret = (struct cas_node){ .kind = CAS_NODE_DIRECTORY, .digest = d->digest, .size = d->size };
        for (size_t i = 0; targets && i < kept; i++)
                free(targets[i]);
        cas_local_names_free(names, n);
        return r;
}

static int local_node(struct local_hasher *h, int dfd, const char *name, const char *path, unsigned depth,
                      struct cas_node *ret, char **ret_target) {
        struct stat st;
        char *target;
        size_t len;
        int r;

        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return log_error_errno(negative_errno(), "%s: %m", path);
        r = emit_str(&h->rd, "(");
        if (r >= 0)
                r = emit_str(&h->rd, "type");
        if (r < 0)
                return r;
        *ret_target = NULL;
        if (S_ISREG(st.st_mode))
                r = local_file(h, dfd, name, path, ret);
        else if (S_ISDIR(st.st_mode))
                r = local_dir(h, dfd, name, path, depth, ret);
        else if (S_ISLNK(st.st_mode)) {
                r = cas_local_readlink(dfd, name, &target, &len);
                if (r < 0)
                        return log_error_errno(r, "%s: cannot read symlink: %m", path);
                *ret_target = target;
                *ret = (struct cas_node){ .kind = CAS_NODE_SYMLINK, .target = target, .target_len = len };
                r = emit_str(&h->rd, "symlink");
                if (r >= 0)
                        r = emit_str(&h->rd, "target");
                if (r >= 0)
                        r = emit_bytes(&h->rd, target, len);
        } else
                return log_error_errno(-EINVAL, "%s: %s refused", path, cas_local_kind(st.st_mode));
        if (r < 0)
                return r;
        return emit_str(&h->rd, ")");
}

int nar_hash_local(const char *path, bool skip_special, uint64_t *ret_nar_size, uint8_t ret_sha256[NIX_SHA256_LEN],
                   struct cas_node *ret_root, void **ret_mem) {
        _cleanup_free_ uint8_t *buf = NULL, *chunk = NULL;
        struct local_hasher h = { .skip_special = skip_special, .rd.hash = true };
        struct cas_node root;
        char *target = NULL;
        int r;

        if (!path || !ret_nar_size || !ret_sha256 || !ret_root || !ret_mem)
                return -EINVAL;
        buf = malloc(RENDER_BUF_SIZE);
        chunk = malloc(LOCAL_CHUNK);
        if (!buf || !chunk)
                return -ENOMEM;
        h.rd.buf = buf;
        h.chunk = chunk;
        r = nix_sha256_init(&h.rd.sha);
        if (r < 0)
                return r;
        r = emit_str(&h.rd, "nix-archive-1");
        if (r >= 0)
                r = local_node(&h, AT_FDCWD, path, path, 0, &root, &target);
        if (r >= 0)
                r = flush(&h.rd);
        if (r >= 0)
                r = nix_sha256_final(&h.rd.sha, ret_sha256);
        else
                nix_sha256_done(&h.rd.sha);
        if (r < 0) {
                free(target);
                return r;
        }
        root.name = "";
        root.name_len = 0;
        *ret_root = root;
        *ret_mem = target;
        *ret_nar_size = h.rd.size;
        return 0;
}
