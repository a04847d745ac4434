/* The tree importer.  The calling thread walks the tree depth-first and
 * finalizes directories; a worker pool reads, hashes and stores file
 * contents.  A directory is finalized (its Directory message built) once
 * every child is done; finalized directories are stored in batches, each
 * batch only after the blobs written so far are made durable. */
#include "castore/import.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/progress.h"
#include "util/log.h"
#include "util/workqueue.h"
#include "castore/localfs.h"
#include "util/io.h"

#define SMALL_FILE_MAX (1024 * 1024) /* read whole, hash, then store if new */
#define CHUNK_SIZE (1024 * 1024)     /* streaming chunk for larger files */
#define QUEUE_CAPACITY 256           /* file jobs in flight: bounds memory and fds */
#define BATCH_BYTES (8 * 1024 * 1024) /* directories kept before a flush */

struct imp_entry {
        char *name;
        size_t name_len;
        enum cas_node_kind kind;
        bool executable;
        uint64_t size;
        struct cas_digest digest;
        char *target;
        size_t target_len;
};

/* A directory being imported.  Created and freed by the walking thread.
 * While pending > 0, workers may read dfd and the entry name of their slot
 * and write the other fields of that slot only. */
struct imp_dir {
        struct imp_dir *parent; /* NULL for the root */
        size_t slot;            /* our index in parent->entries */
        int dfd;
        char *path;             /* for messages */
        struct imp_entry *entries;
        size_t n_entries;
        atomic_int pending;     /* children not done, +1 while listing */
        struct imp_dir *next_done;          /* completed list; ctx->lock */
        struct imp_dir *prev_live, *next_live; /* live list; walking thread only */
};

struct visit {
        struct imp_dir *parent;
        size_t slot;
};

struct imp_ctx {
        struct cas_store *store;
        const struct cas_import_opts *opts;
        struct workqueue *wq;

        pthread_mutex_t lock;
        pthread_cond_t cond;       /* a directory completed, or an error */
        struct imp_dir *done;      /* completed, not yet finalized; lock */
        int error;                 /* first error; lock */
        char *error_path;          /* lock */
        atomic_bool failed;        /* mirrors error != 0, read without the lock */

        atomic_uint_fast64_t files, bytes;

        /* walking thread only: */
        struct imp_dir *live;      /* every imp_dir not yet freed */
        struct visit *stack;
        size_t n_stack, cap_stack;
        struct cas_directory **batch;
        size_t n_batch, cap_batch, batch_bytes;
        uint64_t dirs, symlinks, skipped;
        bool root_done;
        struct cas_digest root_digest;
        uint64_t root_size;
        struct progress progress;
};

struct file_job {
        struct imp_ctx *ctx;
        struct imp_dir *dir;
        size_t slot;
};

static void set_error(struct imp_ctx *ctx, int r, const char *path) {
        pthread_mutex_lock(&ctx->lock);
        if (ctx->error == 0) {
                ctx->error = r;
                ctx->error_path = strdup(path ? path : "?");
        }
        atomic_store(&ctx->failed, true);
        pthread_cond_broadcast(&ctx->cond);
        pthread_mutex_unlock(&ctx->lock);
}

static char *path_join(const char *a, const char *b) {
        char *p;

        if (asprintf(&p, "%s/%s", a, b) < 0)
                return NULL;
        return p;
}

/* ---- file contents (worker threads, and the caller for a file root) ---- */

/* Small files go into pack files, in the order they are stored, so that a
 * tree imported together is read back mostly sequentially. */
static unsigned put_flags(const struct imp_ctx *ctx) {
        return CAS_BLOB_DEFER_SYNC | (ctx->opts->no_pack ? 0 : CAS_BLOB_PACK);
}

/* Streams fd (already positioned after `have` bytes held in buf) into a
 * blob writer. */
static int store_stream(struct cas_blob_service *blobs, int fd, uint8_t *buf, size_t have, struct imp_entry *e) {
        _cleanup_(cas_blob_abortp) struct cas_blob_writer *w = NULL;
        int r;

        r = cas_blob_writer_new(blobs, CAS_BLOB_DEFER_SYNC, &w);
        if (r < 0)
                return r;
        for (;;) {
                if (have > 0) {
                        r = cas_blob_write(w, buf, have);
                        if (r < 0)
                                return r;
                }
                ssize_t n = loop_read(fd, buf, CHUNK_SIZE);
                if (n < 0)
                        return n;
                if (n == 0)
                        break;
                have = n;
        }
        return cas_blob_commit(TAKE_PTR(w), &e->digest, &e->size);
}

static int store_file(struct cas_blob_service *blobs, int dfd, const char *name, unsigned put_flags,
                      struct imp_entry *e, uint64_t *bytes) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ uint8_t *buf = NULL;
        struct stat st;
        ssize_t n;
        int r;

        fd = cas_local_open_file(dfd, name, &st);
        if (fd < 0)
                return fd;
        e->kind = CAS_NODE_FILE;
        e->executable = st.st_mode & S_IXUSR;
        if (st.st_size <= SMALL_FILE_MAX) {
                /* one byte more than expected tells us the file grew */
                buf = malloc(MAX((size_t) st.st_size + 1, (size_t) CHUNK_SIZE));
                if (!buf)
                        return -ENOMEM;
                n = loop_read(fd, buf, st.st_size + 1);
                if (n < 0)
                        return n;
                if (n <= st.st_size) {
                        *bytes = n;
                        e->size = n;
                        return cas_blob_put(blobs, buf, n, put_flags, &e->digest);
                }
                r = store_stream(blobs, fd, buf, n, e);
        } else {
                buf = malloc(CHUNK_SIZE);
                if (!buf)
                        return -ENOMEM;
                (void) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
                r = store_stream(blobs, fd, buf, 0, e);
        }
        if (r >= 0)
                *bytes = e->size;
        return r;
}

static void dir_child_done(struct imp_ctx *ctx, struct imp_dir *d) {
        if (atomic_fetch_sub(&d->pending, 1) != 1)
                return;
        pthread_mutex_lock(&ctx->lock);
        d->next_done = ctx->done;
        ctx->done = d;
        pthread_cond_broadcast(&ctx->cond);
        pthread_mutex_unlock(&ctx->lock);
}

static void file_job_run(void *arg) {
        struct file_job *j = arg;
        struct imp_ctx *ctx = j->ctx;
        struct imp_entry *e = &j->dir->entries[j->slot];
        uint64_t bytes = 0;

        if (!atomic_load(&ctx->failed)) {
                int r = store_file(ctx->store->blobs, j->dir->dfd, e->name, put_flags(ctx), e, &bytes);
                if (r < 0) {
                        _cleanup_free_ char *p = path_join(j->dir->path, e->name);
                        if (r == -EAGAIN)
                                r = -ESTALE;
                        set_error(ctx, r, p);
                } else {
                        atomic_fetch_add(&ctx->files, 1);
                        atomic_fetch_add(&ctx->bytes, bytes);
                }
        }
        dir_child_done(ctx, j->dir);
        free(j);
}

/* ---- directories (walking thread) ---- */

static void imp_dir_free(struct imp_ctx *ctx, struct imp_dir *d) {
        if (d->prev_live)
                d->prev_live->next_live = d->next_live;
        else
                ctx->live = d->next_live;
        if (d->next_live)
                d->next_live->prev_live = d->prev_live;
        for (size_t i = 0; i < d->n_entries; i++) {
                free(d->entries[i].name);
                free(d->entries[i].target);
        }
        free(d->entries);
        free(d->path);
        if (d->dfd >= 0)
                close(d->dfd);
        free(d);
}

static int imp_dir_new(struct imp_ctx *ctx, struct imp_dir *parent, size_t slot, int dfd, const char *path,
                       struct imp_dir **ret) {
        struct imp_dir *d = calloc(1, sizeof(*d));

        if (!d) {
                close(dfd);
                return -ENOMEM;
        }
        d->parent = parent;
        d->slot = slot;
        d->dfd = dfd;
        d->path = strdup(path);
        atomic_init(&d->pending, 1);
        d->next_live = ctx->live;
        if (ctx->live)
                ctx->live->prev_live = d;
        ctx->live = d;
        if (!d->path) {
                imp_dir_free(ctx, d);
                return -ENOMEM;
        }
        *ret = d;
        return 0;
}

/* Reads the names of a directory (any order) into entries. */
static int list_names(int dfd, struct imp_entry **ret, size_t *ret_n) {
        char **names = NULL;
        struct imp_entry *v;
        size_t n = 0;
        int r;

        r = cas_local_list(dfd, &names, &n);
        if (r < 0)
                return r;
        v = calloc(n ? n : 1, sizeof(*v));
        if (!v) {
                cas_local_names_free(names, n);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                v[i] = (struct imp_entry){ .name = names[i], .name_len = strlen(names[i]) };
        free(names); /* the strings now belong to the entries */
        *ret = v;
        *ret_n = n;
        return 0;
}

static int push_visit(struct imp_ctx *ctx, struct imp_dir *parent, size_t slot) {
        if (ctx->n_stack == ctx->cap_stack) {
                size_t cap = ctx->cap_stack ? ctx->cap_stack * 2 : 64;
                struct visit *s = realloc(ctx->stack, cap * sizeof(*s));
                if (!s)
                        return -ENOMEM;
                ctx->stack = s;
                ctx->cap_stack = cap;
        }
        ctx->stack[ctx->n_stack++] = (struct visit){ parent, slot };
        return 0;
}

/* Classifies one entry: symlinks are read now, files counted for a job,
 * directories queued for a visit.  Returns 1 if the entry must be dropped
 * (skipped special file). */
static int classify_entry(struct imp_ctx *ctx, struct imp_dir *d, struct imp_entry *e) {
        struct stat st;
        int r;

        if (fstatat(d->dfd, e->name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                r = negative_errno();
                goto fail;
        }
        if (S_ISREG(st.st_mode)) {
                e->kind = CAS_NODE_FILE;
                return 0;
        }
        if (S_ISDIR(st.st_mode)) {
                e->kind = CAS_NODE_DIRECTORY;
                return 0;
        }
        if (S_ISLNK(st.st_mode)) {
                e->kind = CAS_NODE_SYMLINK;
                r = cas_local_readlink(d->dfd, e->name, &e->target, &e->target_len);
                if (r < 0)
                        goto fail;
                ctx->symlinks++;
                return 0;
        }
        if (ctx->opts->skip_special) {
                ctx->skipped++;
                return 1;
        }
        {
                _cleanup_free_ char *p = path_join(d->path, e->name);
                log_error("%s: %s refused (use --skip-special to leave it out)", p ? p : e->name,
                          cas_local_kind(st.st_mode));
                set_error(ctx, -EINVAL, p);
                return -EINVAL;
        }
fail : {
        _cleanup_free_ char *p = path_join(d->path, e->name);
        set_error(ctx, r, p);
        return r;
}
}

/* Lists d, starts jobs for its files and queues visits of its subdirs. */
static int walk_dir(struct imp_ctx *ctx, struct imp_dir *d) {
        size_t kept = 0;
        int r;

        r = list_names(d->dfd, &d->entries, &d->n_entries);
        if (r < 0) {
                set_error(ctx, r, d->path);
                return r;
        }
        for (size_t i = 0; i < d->n_entries; i++) {
                r = classify_entry(ctx, d, &d->entries[i]);
                if (r > 0) {
                        free(d->entries[i].name); /* a skipped special file */
                        continue;
                }
                if (r < 0) {
                        /* keep each remaining entry exactly once, for imp_dir_free */
                        for (size_t j = i; j < d->n_entries; j++)
                                d->entries[kept++] = d->entries[j];
                        d->n_entries = kept;
                        return r;
                }
                d->entries[kept++] = d->entries[i];
        }
        d->n_entries = kept;
        for (size_t i = 0; i < d->n_entries; i++)
                if (d->entries[i].kind != CAS_NODE_SYMLINK)
                        atomic_fetch_add(&d->pending, 1);
        for (size_t i = d->n_entries; i-- > 0;) {
                if (d->entries[i].kind != CAS_NODE_DIRECTORY)
                        continue;
                r = push_visit(ctx, d, i);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < d->n_entries; i++) {
                struct file_job *j;

                if (d->entries[i].kind != CAS_NODE_FILE)
                        continue;
                j = malloc(sizeof(*j));
                if (!j)
                        return -ENOMEM;
                *j = (struct file_job){ ctx, d, i };
                r = workqueue_push(ctx->wq, file_job_run, j);
                if (r < 0) {
                        free(j);
                        return r;
                }
        }
        dir_child_done(ctx, d); /* listing finished */
        return 0;
}

static int flush_batch(struct imp_ctx *ctx) {
        enum cas_verr why = CAS_VERR_NONE;
        int r;

        /* blobs first: a stored directory never references a blob that a
         * crash could still lose */
        r = cas_blob_sync(ctx->store->blobs);
        if (r < 0)
                return log_error_errno(r, "Failed to make blobs durable: %m");
        if (ctx->n_batch > 0) {
                r = cas_dir_put(ctx->store->dirs, ctx->batch, ctx->n_batch, 0, &why);
                if (r < 0)
                        return log_error_errno(r, "Failed to store directories: %s",
                                               r == -EBADMSG ? cas_verr_str(why) : strerror(-r));
        }
        for (size_t i = 0; i < ctx->n_batch; i++)
                cas_directory_free(ctx->batch[i]);
        ctx->n_batch = 0;
        ctx->batch_bytes = 0;
        return 0;
}

static int batch_add(struct imp_ctx *ctx, struct cas_directory *dir) {
        if (ctx->n_batch == ctx->cap_batch) {
                size_t cap = ctx->cap_batch ? ctx->cap_batch * 2 : 256;
                struct cas_directory **b = realloc(ctx->batch, cap * sizeof(*b));
                if (!b)
                        return -ENOMEM;
                ctx->batch = b;
                ctx->cap_batch = cap;
        }
        ctx->batch[ctx->n_batch++] = dir;
        ctx->batch_bytes += sizeof(*dir) + dir->n_entries * (sizeof(struct cas_node) + 64);
        if (ctx->batch_bytes >= BATCH_BYTES)
                return flush_batch(ctx);
        return 0;
}

/* Builds the Directory of a completed imp_dir, hands it to the batch and
 * reports completion to the parent. */
static int finalize_dir(struct imp_ctx *ctx, struct imp_dir *d) {
        _cleanup_free_ struct cas_node *nodes = calloc(d->n_entries ? d->n_entries : 1, sizeof(*nodes));
        struct cas_directory *dir;
        enum cas_verr why;
        int r;

        if (!nodes)
                return -ENOMEM;
        for (size_t i = 0; i < d->n_entries; i++) {
                const struct imp_entry *e = &d->entries[i];
                nodes[i] = (struct cas_node){
                        .kind = e->kind, .name = e->name, .name_len = e->name_len,
                        .executable = e->executable, .size = e->size, .digest = e->digest,
                        .target = e->target, .target_len = e->target_len,
                };
        }
        r = cas_directory_new(nodes, d->n_entries, &dir, &why);
        if (r < 0) {
                set_error(ctx, r, d->path);
                return r == -EBADMSG ? log_error_errno(r, "%s: %s", d->path, cas_verr_str(why)) : r;
        }
        ctx->dirs++;
        if (d->parent) {
                struct imp_entry *slot = &d->parent->entries[d->slot];
                slot->digest = dir->digest;
                slot->size = dir->size;
        } else {
                ctx->root_done = true;
                ctx->root_digest = dir->digest;
                ctx->root_size = dir->size;
        }
        r = batch_add(ctx, dir);
        if (r < 0) {
                set_error(ctx, r, d->path);
                return r;
        }
        struct imp_dir *parent = d->parent;
        imp_dir_free(ctx, d);
        if (parent)
                dir_child_done(ctx, parent);
        return 0;
}

static void show_progress(struct imp_ctx *ctx, bool final) {
        (final ? progress_done : progress_show)(&ctx->progress, "importing: %llu files, %llu directories, %.1f MiB",
                                                (unsigned long long) atomic_load(&ctx->files),
                                                (unsigned long long) ctx->dirs, atomic_load(&ctx->bytes) / 1048576.0);
}

/* Finalizes every completed directory; with wait, first blocks until at
 * least one completes (or an error). */
static int drain_done(struct imp_ctx *ctx, bool wait) {
        struct imp_dir *list;
        int r;

        pthread_mutex_lock(&ctx->lock);
        while (wait && !ctx->done && ctx->error == 0) {
                struct timespec t;
                clock_gettime(CLOCK_REALTIME, &t);
                t.tv_nsec += 250000000;
                if (t.tv_nsec >= 1000000000) {
                        t.tv_sec++;
                        t.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&ctx->cond, &ctx->lock, &t);
                if (!ctx->done) {
                        pthread_mutex_unlock(&ctx->lock);
                        show_progress(ctx, false);
                        pthread_mutex_lock(&ctx->lock);
                }
        }
        list = ctx->done;
        ctx->done = NULL;
        r = ctx->error;
        pthread_mutex_unlock(&ctx->lock);
        if (r < 0)
                return r;
        /* finalizing may complete a parent, which lands on ctx->done again */
        while (list) {
                struct imp_dir *next = list->next_done;
                r = finalize_dir(ctx, list);
                if (r < 0)
                        return r;
                list = next;
        }
        show_progress(ctx, false);
        return 0;
}

static int visit_next(struct imp_ctx *ctx) {
        struct visit v = ctx->stack[--ctx->n_stack];
        struct imp_entry *e = &v.parent->entries[v.slot];
        _cleanup_free_ char *path = path_join(v.parent->path, e->name);
        struct imp_dir *d;
        int fd, r;

        if (!path)
                return -ENOMEM;
        fd = openat(v.parent->dfd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                r = negative_errno();
                set_error(ctx, r, path);
                return r;
        }
        r = imp_dir_new(ctx, v.parent, v.slot, fd, path, &d);
        if (r < 0)
                return r;
        return walk_dir(ctx, d);
}

static int import_tree(struct imp_ctx *ctx, int fd, const char *path) {
        struct imp_dir *root;
        int r;

        r = imp_dir_new(ctx, NULL, 0, fd, path, &root);
        if (r < 0)
                return r;
        r = walk_dir(ctx, root);
        while (r >= 0 && !ctx->root_done) {
                r = drain_done(ctx, false);
                if (r < 0)
                        break;
                if (ctx->n_stack > 0)
                        r = visit_next(ctx);
                else if (!ctx->root_done)
                        r = drain_done(ctx, true);
        }
        if (r >= 0)
                r = flush_batch(ctx);
        return r;
}

static void ctx_done(struct imp_ctx *ctx) {
        /* stop workers first: they may still reference live directories */
        workqueue_free(ctx->wq);
        while (ctx->live)
                imp_dir_free(ctx, ctx->live);
        for (size_t i = 0; i < ctx->n_batch; i++)
                cas_directory_free(ctx->batch[i]);
        free(ctx->batch);
        free(ctx->stack);
        free(ctx->error_path);
        pthread_mutex_destroy(&ctx->lock);
        pthread_cond_destroy(&ctx->cond);
}

static int import_file_root(struct imp_ctx *ctx, const char *path, struct cas_node *ret, void **ret_mem) {
        struct imp_entry e = {};
        uint64_t bytes = 0;
        int r;

        r = store_file(ctx->store->blobs, AT_FDCWD, path, put_flags(ctx), &e, &bytes);
        if (r < 0)
                return log_error_errno(r, "%s: %m", path);
        r = cas_blob_sync(ctx->store->blobs);
        if (r < 0)
                return log_error_errno(r, "Failed to make blobs durable: %m");
        atomic_store(&ctx->files, 1);
        atomic_store(&ctx->bytes, bytes);
        *ret = (struct cas_node){ .kind = CAS_NODE_FILE, .digest = e.digest, .size = e.size,
                                  .executable = e.executable, .name = "" };
        *ret_mem = NULL;
        return 0;
}

static int import_symlink_root(struct imp_ctx *ctx, const char *path, struct cas_node *ret, void **ret_mem) {
        char *target;
        size_t len;
        int r;

        r = cas_local_readlink(AT_FDCWD, path, &target, &len);
        if (r < 0)
                return log_error_errno(r, "%s: cannot read symlink: %m", path);
        ctx->symlinks = 1;
        *ret = (struct cas_node){ .kind = CAS_NODE_SYMLINK, .name = "", .target = target, .target_len = len };
        *ret_mem = target;
        return 0;
}

/* The workers: as asked, else one per CPU, or four per CPU (at least
 * 16) when each blob write waits on the network. */
static unsigned import_threads(const struct cas_store *store, const struct cas_import_opts *opts) {
        unsigned n = cpu_count();

        if (opts->threads)
                return opts->threads;
        return store->blobs->ops->remote ? MAX(4 * n, 16u) : n;
}

int cas_import_path(struct cas_store *store, const char *path, const struct cas_import_opts *opts,
                    struct cas_node *ret, void **ret_mem, struct cas_import_stats *ret_stats) {
        struct imp_ctx ctx = { .store = store, .opts = opts };
        progress_init(&ctx.progress, opts->progress);
        _cleanup_(cas_store_unlockp) struct cas_store_lock *lock = NULL;
        struct stat st;
        int r, fd;

        if (!store || !path || !opts || !ret || !ret_mem)
                return -EINVAL;
        /* nothing we store may be collected before the root is complete */
        r = cas_store_lock(store, false, true, &lock);
        if (r < 0)
                return r;
        if (lstat(path, &st) < 0)
                return log_error_errno(negative_errno(), "%s: %m", path);
        pthread_mutex_init(&ctx.lock, NULL);
        pthread_cond_init(&ctx.cond, NULL);

        if (S_ISREG(st.st_mode))
                r = import_file_root(&ctx, path, ret, ret_mem);
        else if (S_ISLNK(st.st_mode))
                r = import_symlink_root(&ctx, path, ret, ret_mem);
        else if (S_ISDIR(st.st_mode)) {
                r = workqueue_new(import_threads(store, opts), QUEUE_CAPACITY, &ctx.wq);
                if (r >= 0) {
                        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        r = fd < 0 ? log_error_errno(negative_errno(), "%s: %m", path) : import_tree(&ctx, fd, path);
                }
                if (r >= 0) {
                        *ret = (struct cas_node){ .kind = CAS_NODE_DIRECTORY, .name = "",
                                                  .digest = ctx.root_digest, .size = ctx.root_size };
                        *ret_mem = NULL;
                } else if (ctx.error_path && ctx.error == -ESTALE)
                        log_error("%s changed while it was imported", ctx.error_path);
                else if (ctx.error_path && ctx.error != -EINVAL)
                        log_error("%s: %s", ctx.error_path, strerror(-ctx.error));
        } else if (opts->skip_special) {
                log_error("%s: %s cannot be the root of an import", path, cas_local_kind(st.st_mode));
                r = -EINVAL;
        } else {
                log_error("%s: %s refused", path, cas_local_kind(st.st_mode));
                r = -EINVAL;
        }
        if (ctx.error < 0 && r >= 0)
                r = ctx.error;
        show_progress(&ctx, true);
        if (ret_stats)
                *ret_stats = (struct cas_import_stats){
                        .files = atomic_load(&ctx.files), .bytes = atomic_load(&ctx.bytes),
                        .directories = ctx.dirs, .symlinks = ctx.symlinks, .skipped = ctx.skipped,
                };
        ctx_done(&ctx);
        return r;
}
