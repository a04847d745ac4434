/* NAR ingestion: a strict streaming parser that stores file contents as
 * blobs while it reads and builds the Directory messages bottom-up, storing
 * them only once the whole NAR has parsed (see nar.h).  Small files are
 * hashed by the parser and stored by a pool of workers, since storing a
 * blob costs a file creation, which dominates for trees of small files. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/hashmap.h"
#include "util/log.h"
#include "util/workqueue.h"
#include "store/nar.h"

#define INGEST_BUF_SIZE (256 * 1024)
/* File contents up to this size are read whole and stored with one put. */
#define SMALL_FILE_MAX (64 * 1024)
/* Longest fixed token of the grammar ("nix-archive-1") with room to spare. */
#define TOKEN_MAX 16
/* Small-file stores queued at most (bounds the memory they hold). */
#define STORE_QUEUE 64

/* Errors of the store workers: the first one wins. */
struct store_errors {
        pthread_mutex_t lock;
        int error; /* lock */
};

/* One small file to store: the parser computed its digest already. */
struct store_job {
        struct cas_blob_service *blobs;
        struct store_errors *errors;
        struct cas_digest digest;
        size_t len;
        uint8_t data[];
};

struct parser {
        struct cas_blob_service *blobs;
        struct workqueue *workers; /* NULL: store small files inline */
        struct store_errors errors;
        nar_read_fn read;
        void *userdata;
        uint8_t *buf; /* INGEST_BUF_SIZE bytes */
        size_t pos, end;
        bool eof;
        uint64_t offset;     /* NAR bytes consumed */
        uint64_t tok_offset; /* where the token being parsed starts */
        struct nix_sha256 sha; /* over every byte read */
        const char *error;
        /* Scratch for the name or target being read (leaves of the
         * recursion: never live across a nested parse_node). */
        char scratch[CAS_TARGET_MAX + 1];
        /* Directories completed so far, children before parents, each
         * digest once (seen indexes them by digest). */
        struct cas_directory **dirs;
        size_t n_dirs, cap_dirs;
        struct hashmap seen;
};

static int bad(struct parser *p, const char *why) {
        p->error = why;
        return -EBADMSG;
}

static int fill(struct parser *p) {
        ssize_t n;

        if (p->pos < p->end || p->eof)
                return 0;
        for (;;) {
                n = p->read(p->userdata, p->buf, INGEST_BUF_SIZE);
                if (n != -EINTR)
                        break;
        }
        if (n < 0)
                return (int) n;
        if ((size_t) n > INGEST_BUF_SIZE)
                return -EIO;
        if (n == 0)
                p->eof = true;
        nix_sha256_update(&p->sha, p->buf, (size_t) n);
        p->pos = 0;
        p->end = (size_t) n;
        return 0;
}

/* Copies exactly len bytes (dst may be NULL to skip them). */
static int read_exact(struct parser *p, void *dst, size_t len) {
        uint8_t *d = dst;
        int r;

        while (len > 0) {
                size_t n;

                r = fill(p);
                if (r < 0)
                        return r;
                if (p->pos == p->end)
                        return bad(p, "truncated NAR");
                n = MIN(len, p->end - p->pos);
                if (d) {
                        memcpy(d, p->buf + p->pos, n);
                        d += n;
                }
                p->pos += n;
                p->offset += n;
                len -= n;
        }
        return 0;
}

static int read_u64(struct parser *p, uint64_t *ret) {
        uint8_t le[8];
        uint64_t v = 0;
        int r;

        r = read_exact(p, le, sizeof(le));
        if (r < 0)
                return r;
        for (int i = 7; i >= 0; i--)
                v = (v << 8) | le[i];
        *ret = v;
        return 0;
}

static int read_padding(struct parser *p, uint64_t len) {
        static const uint8_t zero[8];
        uint8_t pad[8];
        size_t n = (8 - len % 8) % 8;
        int r;

        r = read_exact(p, pad, n);
        if (r < 0)
                return r;
        if (memcmp(pad, zero, n) != 0)
                return bad(p, "non-zero padding");
        return 0;
}

/* Reads a string of at most max bytes into buf (NUL-terminated, so buf
 * holds max + 1).  too_long names the error for a longer one. */
static int read_string(struct parser *p, char *buf, size_t max, const char *too_long, size_t *ret_len) {
        uint64_t len;
        int r;

        p->tok_offset = p->offset;
        r = read_u64(p, &len);
        if (r < 0)
                return r;
        if (len > max)
                return bad(p, too_long);
        r = read_exact(p, buf, (size_t) len);
        if (r < 0)
                return r;
        buf[len] = 0;
        *ret_len = (size_t) len;
        return read_padding(p, len);
}

/* Reads one grammar token; anything longer than any token, or holding a
 * NUL, is refused with `why` (what was expected there). */
static int read_token(struct parser *p, char tok[TOKEN_MAX + 1], const char *why) {
        size_t len;
        int r;

        r = read_string(p, tok, TOKEN_MAX, why, &len);
        if (r < 0)
                return r;
        if (memchr(tok, 0, len))
                return bad(p, why);
        return 0;
}

static int expect(struct parser *p, const char *want, const char *why) {
        char tok[TOKEN_MAX + 1];
        int r;

        r = read_token(p, tok, why);
        if (r < 0)
                return r;
        if (strcmp(tok, want) != 0)
                return bad(p, why);
        return 0;
}

static void store_job_run(void *arg) {
        struct store_job *j = arg;
        struct cas_digest d;
        int r;

        r = cas_blob_put(j->blobs, j->data, j->len, CAS_BLOB_DEFER_SYNC, &d);
        if (r >= 0 && !cas_digest_equal(&d, &j->digest))
                r = -EIO; /* the service disagrees with our own hash */
        if (r < 0) {
                pthread_mutex_lock(&j->errors->lock);
                if (j->errors->error == 0)
                        j->errors->error = r;
                pthread_mutex_unlock(&j->errors->lock);
        }
        free(j);
}

/* Reads a small file's contents, hashes them and has a worker store them
 * (or stores them here without workers). */
static int read_small_contents(struct parser *p, size_t len, struct cas_digest *ret) {
        struct store_job *j = malloc(sizeof(*j) + len);
        int r;

        if (!j)
                return -ENOMEM;
        *j = (struct store_job){ .blobs = p->blobs, .errors = &p->errors, .len = len };
        r = read_exact(p, j->data, len);
        if (r >= 0)
                r = read_padding(p, len);
        if (r < 0) {
                free(j);
                return r;
        }
        cas_digest_of(j->data, len, &j->digest);
        *ret = j->digest;
        if (!p->workers) {
                store_job_run(j);
                r = p->errors.error;
        } else {
                pthread_mutex_lock(&p->errors.lock);
                r = p->errors.error; /* stop early once a store failed */
                pthread_mutex_unlock(&p->errors.lock);
                if (r >= 0)
                        r = workqueue_push(p->workers, store_job_run, j);
                if (r < 0)
                        free(j);
        }
        if (r < 0)
                return log_error_errno(r, "Failed to store file contents: %m");
        return 0;
}

/* Stores len bytes of file contents as a blob; *ret gets its digest. */
static int read_contents(struct parser *p, uint64_t len, struct cas_digest *ret) {
        _cleanup_(cas_blob_abortp) struct cas_blob_writer *w = NULL;
        uint64_t left = len, size;
        int r;

        if (len <= SMALL_FILE_MAX)
                return read_small_contents(p, (size_t) len, ret);

        r = cas_blob_writer_new(p->blobs, CAS_BLOB_DEFER_SYNC, &w);
        if (r < 0)
                return log_error_errno(r, "Failed to start a blob: %m");
        while (left > 0) {
                size_t n;

                r = fill(p);
                if (r < 0)
                        return r;
                if (p->pos == p->end)
                        return bad(p, "truncated NAR");
                n = (size_t) MIN((uint64_t) (p->end - p->pos), left);
                r = cas_blob_write(w, p->buf + p->pos, n);
                if (r < 0)
                        return log_error_errno(r, "Failed to write file contents: %m");
                p->pos += n;
                p->offset += n;
                left -= n;
        }
        r = cas_blob_commit(TAKE_PTR(w), ret, &size);
        if (r < 0)
                return log_error_errno(r, "Failed to store file contents: %m");
        if (size != len)
                return log_error_errno(-EIO, "Blob service stored %" PRIu64 " bytes of %" PRIu64, size, len);
        return read_padding(p, len);
}

static bool dir_eq(const void *entry, const void *key) {
        return cas_digest_equal(&((const struct cas_directory *) entry)->digest, key);
}

/* Takes ownership of d. */
static int add_directory(struct parser *p, struct cas_directory *d) {
        int r;

        if (hashmap_get(&p->seen, cas_digest_hash(&d->digest), &d->digest)) {
                cas_directory_free(d);
                return 0;
        }
        if (p->n_dirs == p->cap_dirs) {
                size_t cap = p->cap_dirs ? 2 * p->cap_dirs : 16;
                struct cas_directory **n = realloc(p->dirs, cap * sizeof(*n));

                if (!n) {
                        cas_directory_free(d);
                        return -ENOMEM;
                }
                p->dirs = n;
                p->cap_dirs = cap;
        }
        r = hashmap_put(&p->seen, cas_digest_hash(&d->digest), d);
        if (r < 0) {
                cas_directory_free(d);
                return r;
        }
        p->dirs[p->n_dirs++] = d;
        return 0;
}

/* The entries of one directory being parsed; names and targets are
 * malloc'ed per entry until cas_directory_new copies them. */
struct entries {
        struct cas_node *v;
        size_t n, cap;
};

static void entries_done(struct entries *e) {
        for (size_t i = 0; i < e->n; i++) {
                free((char *) e->v[i].name);
                free((char *) e->v[i].target);
        }
        free(e->v);
}

static int parse_node(struct parser *p, unsigned depth, struct cas_node *ret);

#define DIR_WHY "expected \"entry\" or \")\" in a directory"

static int parse_directory(struct parser *p, unsigned depth, struct cas_node *ret) {
        _cleanup_(entries_done) struct entries e = {};
        char tok[TOKEN_MAX + 1];
        struct cas_directory *d;
        enum cas_verr why;
        int r;

        if (depth >= NAR_DEPTH_MAX)
                return bad(p, "directories nested too deeply");
        for (;;) {
                char *name = p->scratch;
                size_t name_len;
                struct cas_node *n;

                r = read_token(p, tok, DIR_WHY);
                if (r < 0)
                        return r;
                if (strcmp(tok, ")") == 0)
                        break;
                if (strcmp(tok, "entry") != 0)
                        return bad(p, DIR_WHY);
                r = expect(p, "(", "expected \"(\" after \"entry\"");
                if (r >= 0)
                        r = expect(p, "name", "expected \"name\"");
                if (r >= 0)
                        r = read_string(p, name, CAS_NAME_MAX, "entry name longer than 255 bytes", &name_len);
                if (r < 0)
                        return r;
                if (cas_name_check(name, name_len) != CAS_VERR_NONE)
                        return bad(p, "invalid entry name (empty, . or .., or containing / or NUL)");
                if (e.n > 0) {
                        const struct cas_node *prev = &e.v[e.n - 1];
                        int c = cas_name_compare(prev->name, prev->name_len, name, name_len);

                        if (c == 0)
                                return bad(p, "duplicate entry name");
                        if (c > 0)
                                return bad(p, "entry names not in ascending order");
                }
                if (e.n == e.cap) {
                        size_t cap = e.cap ? 2 * e.cap : 8;
                        struct cas_node *v = realloc(e.v, cap * sizeof(*v));

                        if (!v)
                                return -ENOMEM;
                        e.v = v;
                        e.cap = cap;
                }
                n = &e.v[e.n];
                *n = (struct cas_node){};
                n->name = strndup(name, name_len);
                if (!n->name)
                        return -ENOMEM;
                n->name_len = (uint16_t) name_len;
                e.n++;
                r = expect(p, "node", "expected \"node\"");
                if (r >= 0)
                        r = parse_node(p, depth + 1, n);
                if (r >= 0)
                        r = expect(p, ")", "expected \")\" closing an entry");
                if (r < 0)
                        return r;
        }

        r = cas_directory_new(e.v, e.n, &d, &why);
        if (r == -EBADMSG)
                return bad(p, cas_verr_str(why));
        if (r < 0)
                return r;
        *ret = (struct cas_node){ .kind = CAS_NODE_DIRECTORY, .digest = d->digest, .size = d->size,
                                  .name = ret->name, .name_len = ret->name_len };
        return add_directory(p, d);
}

/* Parses "(" "type" ... ")" into *ret, keeping ret->name/name_len. */
static int parse_node(struct parser *p, unsigned depth, struct cas_node *ret) {
        char tok[TOKEN_MAX + 1];
        uint64_t len;
        int r;

        r = expect(p, "(", "expected \"(\" opening a node");
        if (r >= 0)
                r = expect(p, "type", "expected \"type\"");
        if (r >= 0)
                r = read_token(p, tok, "unknown node type");
        if (r < 0)
                return r;

        if (strcmp(tok, "regular") == 0) {
                ret->kind = CAS_NODE_FILE;
                r = read_token(p, tok, "expected \"executable\" or \"contents\"");
                if (r < 0)
                        return r;
                if (strcmp(tok, "executable") == 0) {
                        ret->executable = true;
                        r = expect(p, "", "\"executable\" marker with a non-empty value");
                        if (r >= 0)
                                r = read_token(p, tok, "expected \"contents\"");
                        if (r < 0)
                                return r;
                }
                if (strcmp(tok, "contents") != 0)
                        return bad(p, ret->executable ? "expected \"contents\"" : "expected \"executable\" or \"contents\"");
                p->tok_offset = p->offset;
                r = read_u64(p, &len);
                if (r >= 0)
                        r = read_contents(p, len, &ret->digest);
                if (r < 0)
                        return r;
                ret->size = len;
        } else if (strcmp(tok, "symlink") == 0) {
                char *target = p->scratch;
                size_t target_len;

                ret->kind = CAS_NODE_SYMLINK;
                r = expect(p, "target", "expected \"target\"");
                if (r >= 0)
                        r = read_string(p, target, CAS_TARGET_MAX, "symlink target longer than 4095 bytes",
                                        &target_len);
                if (r < 0)
                        return r;
                if (cas_target_check(target, target_len) != CAS_VERR_NONE)
                        return bad(p, "invalid symlink target (empty or containing NUL)");
                ret->target = strndup(target, target_len);
                if (!ret->target)
                        return -ENOMEM;
                ret->target_len = (uint16_t) target_len;
        } else if (strcmp(tok, "directory") == 0)
                /* consumes the closing ")" itself */
                return parse_directory(p, depth, ret);
        else
                return bad(p, "unknown node type");

        return expect(p, ")", "expected \")\" closing a node");
}

static void parser_done(struct parser *p) {
        workqueue_free(p->workers); /* waits for queued stores */
        pthread_mutex_destroy(&p->errors.lock);
        for (size_t i = 0; i < p->n_dirs; i++)
                cas_directory_free(p->dirs[i]);
        free(p->dirs);
        hashmap_done(&p->seen);
        nix_sha256_done(&p->sha);
        free(p->buf);
}

int nar_ingest(struct cas_blob_service *blobs, struct cas_dir_service *dirs, nar_read_fn read, void *userdata,
               unsigned flags, struct nar_ingest_result *ret) {
        _cleanup_(parser_done) struct parser p = {
                .blobs = blobs,
                .read = read,
                .userdata = userdata,
        };
        struct cas_node root = { .name = "" };
        enum cas_verr why;
        int r;

        if (!blobs || !dirs || !read || !ret)
                return -EINVAL;
        *ret = (struct nar_ingest_result){};
        hashmap_init(&p.seen, dir_eq);
        pthread_mutex_init(&p.errors.lock, NULL);
        if (!(flags & NAR_INGEST_SERIAL) && cpu_count() > 1 && workqueue_new(0, STORE_QUEUE, &p.workers) < 0)
                p.workers = NULL; /* store inline instead */
        p.buf = malloc(INGEST_BUF_SIZE);
        if (!p.buf)
                return -ENOMEM;
        r = nix_sha256_init(&p.sha);
        if (r < 0)
                return r;

        r = expect(&p, "nix-archive-1", "not a NAR (bad magic)");
        if (r >= 0)
                r = parse_node(&p, 0, &root);
        if (r >= 0) {
                p.tok_offset = p.offset;
                r = fill(&p);
                if (r >= 0 && p.pos < p.end)
                        r = bad(&p, "trailing data after the NAR");
        }
        if (p.workers) {
                workqueue_free(TAKE_PTR(p.workers)); /* waits for the queued stores */
                if (r >= 0 && p.errors.error < 0)
                        r = log_error_errno(p.errors.error, "Failed to store file contents: %m");
        }
        if (r >= 0) {
                r = cas_blob_sync(blobs);
                if (r == -EOPNOTSUPP)
                        r = 0;
                if (r < 0)
                        log_error_errno(r, "Failed to sync blobs: %m");
        }
        if (r >= 0 && p.n_dirs > 0) {
                r = cas_dir_put(dirs, p.dirs, p.n_dirs, 0, &why);
                if (r < 0)
                        log_error_errno(r, "Failed to store directories: %m (%s)",
                                        r == -EBADMSG ? cas_verr_str(why) : "store error");
        }
        if (r >= 0)
                r = nix_sha256_final(&p.sha, ret->nar_sha256);
        if (r < 0) {
                if (r == -EBADMSG && p.error) {
                        ret->error = p.error;
                        ret->error_offset = p.tok_offset;
                }
                free((char *) root.target);
                return r;
        }
        ret->root = root;
        ret->mem = (void *) root.target;
        ret->nar_size = p.offset;
        return 0;
}
