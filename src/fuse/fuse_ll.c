/* The FUSE protocol engine: validates each request (lengths, names),
 * dispatches it through an opcode table to src/fs, and encodes the reply
 * into the caller's scratch buffer.  Shared by /dev/fuse and virtiofs. */
#include "fuse/fuse_ll.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/fs.h"
#include "util/log.h"
#include "util/macro.h"

#define PAGE 4096u
/* The largest READ, unless the configuration asks for less: 256 pages,
 * 1 MiB.  That is what the kernel accepts: FUSE_MAX_MAX_PAGES before
 * Linux 6.13, the default of fs.fuse.max_pages_limit since (a larger
 * max_pages in the INIT reply is clamped to it, so asking for more gains
 * nothing unless an administrator raised the limit).  Every READ reply is
 * a verified copy in the transport's scratch buffer, one per worker, so
 * this is also the memory each worker holds for data; readahead keeps
 * several such reads in flight. */
#define DEFAULT_MAX_PAGES 256u
#define KERNEL_DEFAULT_MAX_PAGES 32u    /* without FUSE_MAX_PAGES */
#define MAX_WRITE 4096u                 /* read-only: the smallest the kernel accepts */
#define REQUEST_SIZE 16384u             /* > FUSE_MIN_READ_BUFFER and header + write_in + MAX_WRITE */
#define MAX_BACKGROUND 64u              /* async reads (readahead) in flight */
#define CONGESTION_THRESHOLD 48u

/* What one INIT negotiated.  Every INIT replaces it whole (session_start),
 * and the transport runs INIT while no other request runs: read without a
 * lock by the requests of the session. */
struct session {
        bool initialized;
        uint32_t minor;
        uint32_t max_read;              /* bytes per READ reply */
        bool passthrough;               /* FOPEN_PASSTHROUGH answered to opens */
        int passthrough_error;          /* 0, or why passthrough is off */
        bool no_opendir;                /* zero-message opendir: answer OPENDIR with ENOSYS */
        bool no_open_ok;                /* the kernel can open files without asking */
        bool io_uring;                  /* FUSE_OVER_IO_URING answered */
};

struct fuse_ll {
        struct fs *fs;
        struct fuse_ll_caps caps;       /* immutable */
        struct fuse_ll_config cfg;      /* immutable; max_pages within 1..65535 */
        struct fs_backing_ops backing;  /* immutable: the fs's side of caps.backing */
        struct session s;               /* see struct session */
        bool destroyed;                 /* atomic: DESTROY seen; cleared by INIT */
        bool backing_refused;           /* atomic: a registration failed, no more are tried; cleared by INIT */
};

/* One request being handled: a private copy of the header, the body
 * (extensions excluded) and where the reply goes. */
struct req {
        struct fuse_ll *ll;
        struct fuse_in_header h;
        const uint8_t *body;
        size_t body_len;
        uint8_t *scratch;
        size_t scratch_len;
        struct fuse_ll_reply *reply;
};

typedef int (*op_fn)(struct req *rq);

struct op {
        op_fn fn;
        const char *name;
        uint32_t min_in; /* smallest valid body */
};

/* --- reply helpers --- */

static int reply_ok(struct req *rq, const void *payload, size_t len) {
        rq->reply->payload = payload;
        rq->reply->payload_len = len;
        rq->reply->hdr.len = sizeof(struct fuse_out_header) + len;
        rq->reply->hdr.error = 0;
        return 0;
}

static void reply_error(struct req *rq, int error) {
        rq->reply->payload = NULL;
        rq->reply->payload_len = 0;
        rq->reply->hdr.len = sizeof(struct fuse_out_header);
        rq->reply->hdr.error = error;
}

static int reply_none(struct req *rq) {
        rq->reply->none = true;
        return 0;
}

/* A reply struct placed at the start of the scratch buffer. */
#define SCRATCH(rq, type)                                                         \
        ({                                                                        \
                _Static_assert(sizeof(type) <= PAGE, "reply larger than a page"); \
                memset((rq)->scratch, 0, sizeof(type));                           \
                (type *) (void *) (rq)->scratch;                                  \
        })

/* The NUL-terminated string at body + off: -EPROTO if it runs past the end. */
static int body_string(const struct req *rq, size_t off, const char **ret, size_t *ret_len) {
        const char *s, *nul;

        if (off >= rq->body_len)
                return -EPROTO;
        s = (const char *) rq->body + off;
        nul = memchr(s, 0, rq->body_len - off);
        if (!nul)
                return -EPROTO;
        *ret = s;
        *ret_len = nul - s;
        return 0;
}

static void attr_to_fuse(const struct fs_attr *a, struct fuse_attr *o) {
        *o = (struct fuse_attr){
                .ino = a->ino,
                .size = a->size,
                .blocks = a->blocks,
                .atime = a->time,
                .mtime = a->time,
                .ctime = a->time,
                .atimensec = a->time_nsec,
                .mtimensec = a->time_nsec,
                .ctimensec = a->time_nsec,
                .mode = a->mode,
                .nlink = a->nlink,
                .uid = a->uid,
                .gid = a->gid,
                .blksize = a->blksize,
        };
}

static void entry_to_fuse(const struct fs_entry *e, struct fuse_entry_out *o) {
        *o = (struct fuse_entry_out){
                .nodeid = e->ino,
                .generation = e->generation,
                .entry_valid = e->entry_valid.sec,
                .entry_valid_nsec = e->entry_valid.nsec,
                .attr_valid = e->attr_valid.sec,
                .attr_valid_nsec = e->attr_valid.nsec,
        };
        if (e->ino != 0)
                attr_to_fuse(&e->attr, &o->attr);
}

/* --- the session: INIT, passthrough --- */

/* The fs registers blob files through these, and they through the
 * transport.  After one refusal none is tried again in the session: the
 * files are served through the daemon, and opens need not be asked for. */
static int ll_backing_open(void *ctx, int fd) {
        struct fuse_ll *ll = ctx;
        int id;

        if (__atomic_load_n(&ll->backing_refused, __ATOMIC_ACQUIRE))
                return -EOPNOTSUPP;
        id = ll->caps.backing->open(ll->caps.ctx, fd);
        if (id < 0 && !__atomic_exchange_n(&ll->backing_refused, true, __ATOMIC_ACQ_REL))
                log_warning("Passthrough refused (%s); serving reads through the daemon", strerror(-id));
        return id;
}

static void ll_backing_close(void *ctx, int id) {
        struct fuse_ll *ll = ctx;
        int r = ll->caps.backing->close ? ll->caps.backing->close(ll->caps.ctx, id) : 0;
        if (r < 0)
                log_debug_errno(r, "Closing backing id %d failed: %m", id);
}

/* Whether opens register blob files with the kernel right now. */
static bool passthrough_active(const struct fuse_ll *ll) {
        return ll->s.passthrough && !__atomic_load_n(&ll->backing_refused, __ATOMIC_ACQUIRE);
}

/* The passthrough decision at INIT: configured, possible for the
 * transport, and offered by the kernel (7.40+).  0 or -ENOPROTOOPT. */
static int passthrough_negotiate(const struct fuse_ll *ll, uint64_t kflags, uint32_t minor) {
        if (!ll->cfg.passthrough || !ll->caps.backing || !(kflags & FUSE_PASSTHROUGH) || minor < 40)
                return -ENOPROTOOPT;
        return 0;
}

/* A new session begins (at INIT, before the reply): the fs forgets what
 * an earlier kernel knew (its inodes, handles and backing files), and the
 * engine's negotiated state is replaced whole. */
static void session_start(struct fuse_ll *ll, const struct session *s) {
        fs_session_reset(ll->fs);
        ll->s = *s;
        __atomic_store_n(&ll->backing_refused, false, __ATOMIC_RELEASE);
        __atomic_store_n(&ll->destroyed, false, __ATOMIC_RELEASE);
}

/* The kernel has the INIT reply: passthrough, if negotiated, is tried once
 * (when the transport can) and enabled in the fs. */
static void session_complete(struct fuse_ll *ll) {
        int r;

        if (!ll->s.passthrough)
                return;
        r = ll->caps.backing->probe ? ll->caps.backing->probe(ll->caps.ctx) : 0;
        if (r < 0) {
                /* without it, files need no open requests at all */
                log_info("FUSE passthrough not available (%s); reads go through the daemon", strerror(-r));
                ll->s.passthrough = false;
                ll->s.passthrough_error = r;
                return;
        }
        fs_set_backing(ll->fs, &ll->backing, ll);
}

/* --- operations --- */

static int do_init(struct req *rq) {
        struct fuse_ll *ll = rq->ll;
        struct fuse_init_in in = {};
        struct fuse_ll_init_out *out = SCRATCH(rq, struct fuse_ll_init_out);
        struct session s = {};
        uint64_t kflags, want, flags;
        size_t out_len;

        memcpy(&in, rq->body, MIN(rq->body_len, sizeof(in)));
        out->major = FUSE_KERNEL_VERSION;
        out->minor = FUSE_LL_MINOR;
        if (in.major > FUSE_KERNEL_VERSION) {
                /* the kernel retries with our major version */
                log_debug("INIT: kernel speaks %u.%u, answering with %u", in.major, in.minor, FUSE_KERNEL_VERSION);
                return reply_ok(rq, out, sizeof(*out));
        }
        if (in.major < FUSE_KERNEL_VERSION || in.minor < FUSE_LL_MIN_MINOR) {
                log_error("Kernel FUSE protocol %u.%u is too old (need %u.%u)", in.major, in.minor,
                          FUSE_KERNEL_VERSION, FUSE_LL_MIN_MINOR);
                return -EPROTO;
        }
        kflags = in.flags;
        if (in.minor >= 36 && (in.flags & FUSE_INIT_EXT) && rq->body_len >= offsetof(struct fuse_init_in, flags2) + 4)
                kflags |= (uint64_t) in.flags2 << 32;

        s.initialized = true;
        s.minor = MIN(in.minor, (uint32_t) FUSE_LL_MINOR);
        /* READDIRPLUS always, not _AUTO (which makes only a directory's
         * first chunk carry attributes): a cold walk then sends no LOOKUP
         * per entry (7,603 entries: 3,715 requests with _AUTO, 2,644
         * without, 1,140 LOOKUPs down to 65) */
        want = FUSE_ASYNC_READ | FUSE_PARALLEL_DIROPS | FUSE_DO_READDIRPLUS |
               FUSE_CACHE_SYMLINKS | FUSE_MAX_PAGES | FUSE_EXPLICIT_INVAL_DATA | FUSE_ASYNC_DIO |
               FUSE_INIT_EXT;
        s.passthrough_error = passthrough_negotiate(ll, kflags, s.minor);
        s.passthrough = s.passthrough_error == 0;
        if (s.passthrough)
                want |= FUSE_PASSTHROUGH;
        if ((kflags & FUSE_OVER_IO_URING) && ll->caps.io_uring_ready && ll->caps.io_uring_ready(ll->caps.ctx))
                want |= FUSE_OVER_IO_URING;
        flags = kflags & want;
        if (!(kflags & FUSE_INIT_EXT))
                flags &= 0xffffffffULL; /* no flags2 without the extension */

        s.max_read = (flags & FUSE_MAX_PAGES) ? ll->cfg.max_pages * PAGE : KERNEL_DEFAULT_MAX_PAGES * PAGE;
        s.max_read = MIN(s.max_read, ll->cfg.max_pages * PAGE);
        /* Directory handles are stateless unless the root is listable: let
         * the kernel open directories without asking (two requests fewer per
         * directory walked, listings cached with FOPEN_CACHE_DIR). */
        s.no_opendir = (kflags & FUSE_NO_OPENDIR_SUPPORT) && !fs_dir_handles_needed(ll->fs);
        /* Zero-message opens skip our EROFS answer to opens for writing, so
         * they need a mount the kernel itself keeps read-only. */
        s.no_open_ok = (kflags & FUSE_NO_OPEN_SUPPORT) && ll->caps.readonly_mount;
        s.io_uring = (flags & FUSE_OVER_IO_URING) != 0;
        session_start(ll, &s);

        out->minor = s.minor;
        out->max_readahead = in.max_readahead;
        out->flags = (uint32_t) flags;
        out->flags2 = (uint32_t) (flags >> 32);
        out->max_background = MAX_BACKGROUND;
        out->congestion_threshold = CONGESTION_THRESHOLD;
        out->max_write = MAX_WRITE;
        out->time_gran = 1;
        if (flags & FUSE_MAX_PAGES)
                out->max_pages = ll->cfg.max_pages;
        if (s.passthrough)
                out->max_stack_depth = 1; /* blob files live on a plain filesystem */

        if (in.minor < 5)
                out_len = 8; /* FUSE_COMPAT_INIT_OUT_SIZE */
        else if (in.minor < 23)
                out_len = 24; /* FUSE_COMPAT_22_INIT_OUT_SIZE */
        else
                out_len = sizeof(*out);
        log_debug("INIT (%s): kernel %u.%u flags %#" PRIx64 ", answering %u.%u flags %#" PRIx64
                  " max_pages %u passthrough %s io_uring %s",
                  ll->caps.name ? ll->caps.name : "?", in.major, in.minor, kflags, FUSE_KERNEL_VERSION, s.minor,
                  flags, out->max_pages, s.passthrough ? "offered" : "off", s.io_uring ? "on" : "off");
        rq->reply->session_pending = true; /* session_complete() once the kernel has it */
        return reply_ok(rq, out, out_len);
}

static int do_destroy(struct req *rq) {
        __atomic_store_n(&rq->ll->destroyed, true, __ATOMIC_RELEASE);
        return reply_ok(rq, NULL, 0);
}

static int do_lookup(struct req *rq) {
        struct fuse_entry_out *out = SCRATCH(rq, struct fuse_entry_out);
        struct fs_entry e;
        const char *name;
        size_t len;
        int r;

        r = body_string(rq, 0, &name, &len);
        if (r < 0)
                return r;
        r = fs_lookup(rq->ll->fs, rq->h.nodeid, name, len, &e);
        if (r < 0)
                return r;
        entry_to_fuse(&e, out);
        return reply_ok(rq, out, sizeof(*out));
}

static int do_forget(struct req *rq) {
        struct fuse_forget_in in;

        memcpy(&in, rq->body, sizeof(in));
        fs_forget(rq->ll->fs, rq->h.nodeid, in.nlookup);
        return reply_none(rq);
}

static int do_batch_forget(struct req *rq) {
        struct fuse_batch_forget_in in;
        size_t avail;

        memcpy(&in, rq->body, sizeof(in));
        avail = (rq->body_len - sizeof(in)) / sizeof(struct fuse_forget_one);
        for (size_t i = 0; i < MIN((size_t) in.count, avail); i++) {
                struct fuse_forget_one one;
                memcpy(&one, rq->body + sizeof(in) + i * sizeof(one), sizeof(one));
                fs_forget(rq->ll->fs, one.nodeid, one.nlookup);
        }
        reply_none(rq);
        return in.count > avail ? -EPROTO : 0;
}

static int do_getattr(struct req *rq) {
        struct fuse_attr_out *out = SCRATCH(rq, struct fuse_attr_out);
        struct fs_timeout valid;
        struct fs_attr a;
        int r;

        r = fs_getattr(rq->ll->fs, rq->h.nodeid, &a, &valid);
        if (r < 0)
                return r;
        out->attr_valid = valid.sec;
        out->attr_valid_nsec = valid.nsec;
        attr_to_fuse(&a, &out->attr);
        return reply_ok(rq, out, sizeof(*out));
}

static int do_readlink(struct req *rq) {
        int r = fs_readlink(rq->ll->fs, rq->h.nodeid, (char *) rq->scratch, MIN(rq->scratch_len, (size_t) CAS_TARGET_MAX));
        if (r < 0)
                return r;
        return reply_ok(rq, rq->scratch, r);
}

static int open_reply(struct req *rq, const struct fs_open *o) {
        struct fuse_ll_open_out *out = SCRATCH(rq, struct fuse_ll_open_out);

        out->fh = o->fh;
        if (o->backing_id >= 0 && rq->ll->s.passthrough) {
                out->open_flags = FOPEN_PASSTHROUGH;
                out->backing_id = o->backing_id;
        } else if (o->keep_cache)
                out->open_flags = FOPEN_KEEP_CACHE;
        if (o->cache_dir)
                out->open_flags |= FOPEN_CACHE_DIR;
        if (rq->ll->s.minor >= 35)
                out->open_flags |= FOPEN_NOFLUSH; /* nothing to flush on close */
        return reply_ok(rq, out, sizeof(*out));
}

static int do_open(struct req *rq) {
        struct fuse_open_in in;
        struct fs_open o;
        int r;

        memcpy(&in, rq->body, sizeof(in));
        /* Without passthrough an open handle carries no state: answering
         * ENOSYS makes the kernel open files without asking from now on
         * (one request fewer per file; content cached with KEEP_CACHE), and
         * blobs are checked on first read instead. */
        if ((in.flags & O_ACCMODE) != O_RDONLY || (in.flags & (O_TRUNC | O_CREAT)))
                return -EROFS;
        if (rq->ll->s.no_open_ok && !passthrough_active(rq->ll))
                return -ENOSYS;
        r = fs_open(rq->ll->fs, rq->h.nodeid, in.flags, &o);
        if (r < 0)
                return r;
        return open_reply(rq, &o);
}

static int do_opendir(struct req *rq) {
        struct fs_open o;
        int r;

        if (rq->ll->s.no_opendir)
                return -ENOSYS; /* the kernel stops sending OPENDIR and RELEASEDIR */
        r = fs_opendir(rq->ll->fs, rq->h.nodeid, &o);
        if (r < 0)
                return r;
        return open_reply(rq, &o);
}

static int do_read(struct req *rq) {
        struct fuse_read_in in;
        struct fs_read_result res;
        size_t size;
        int r;

        memcpy(&in, rq->body, sizeof(in));
        /* fh 0 means "opened without asking", which only a kernel offered
         * zero-message opens does (never a virtiofs guest): anyone else
         * must name a handle, which keeps the blob reader open */
        if (in.fh == 0 && !rq->ll->s.no_open_ok)
                return -EBADF;
        size = MIN((size_t) in.size, (size_t) rq->ll->s.max_read);
        size = MIN(size, rq->scratch_len);
        /* the data is verified and copied into scratch: the reply is
         * self-contained, nothing stays in use once fs_read returns */
        r = fs_read(rq->ll->fs, rq->h.nodeid, in.fh, in.offset, size, rq->scratch, &res);
        if (r < 0)
                return r;
        return reply_ok(rq, rq->scratch, res.len);
}

static int do_release(struct req *rq) {
        struct fuse_release_in in;

        memcpy(&in, rq->body, sizeof(in));
        return fs_release(rq->ll->fs, rq->h.nodeid, in.fh) < 0 ? -EBADF : reply_ok(rq, NULL, 0);
}

static int do_releasedir(struct req *rq) {
        struct fuse_release_in in;

        memcpy(&in, rq->body, sizeof(in));
        return fs_releasedir(rq->ll->fs, rq->h.nodeid, in.fh) < 0 ? -EBADF : reply_ok(rq, NULL, 0);
}

static int do_statfs(struct req *rq) {
        struct fuse_statfs_out *out = SCRATCH(rq, struct fuse_statfs_out);
        struct fs_statfs s;
        int r;

        r = fs_statfs(rq->ll->fs, rq->h.nodeid, &s);
        if (r < 0)
                return r;
        out->st = (struct fuse_kstatfs){
                .blocks = s.blocks,
                .bfree = s.bfree,
                .bavail = s.bavail,
                .files = s.files,
                .ffree = s.ffree,
                .bsize = s.bsize,
                .namelen = s.namelen,
                .frsize = s.frsize,
        };
        return reply_ok(rq, out, sizeof(*out));
}

/* GETXATTR and LISTXATTR: size 0 asks for the length only. */
static int xattr_reply(struct req *rq, uint32_t size, ssize_t (*get)(struct req *rq, void *buf, size_t size)) {
        ssize_t n;

        if (size == 0) {
                struct fuse_getxattr_out *out = SCRATCH(rq, struct fuse_getxattr_out);
                n = get(rq, NULL, 0);
                if (n < 0)
                        return n;
                out->size = n;
                return reply_ok(rq, out, sizeof(*out));
        }
        n = get(rq, rq->scratch, MIN((size_t) size, rq->scratch_len));
        if (n < 0)
                return n;
        return reply_ok(rq, rq->scratch, n);
}

static ssize_t getxattr_get(struct req *rq, void *buf, size_t size) {
        const char *name;
        size_t len;
        int r = body_string(rq, sizeof(struct fuse_getxattr_in), &name, &len);
        if (r < 0)
                return r;
        return fs_getxattr(rq->ll->fs, rq->h.nodeid, name, buf, size);
}

static int do_getxattr(struct req *rq) {
        struct fuse_getxattr_in in;
        const char *name;
        size_t len;
        int r;

        memcpy(&in, rq->body, sizeof(in));
        r = body_string(rq, sizeof(in), &name, &len); /* validate before anything else */
        if (r < 0)
                return r;
        return xattr_reply(rq, in.size, getxattr_get);
}

static ssize_t listxattr_get(struct req *rq, void *buf, size_t size) {
        return fs_listxattr(rq->ll->fs, rq->h.nodeid, buf, size);
}

static int do_listxattr(struct req *rq) {
        struct fuse_getxattr_in in;

        memcpy(&in, rq->body, sizeof(in));
        return xattr_reply(rq, in.size, listxattr_get);
}

static int do_access(struct req *rq) {
        struct fuse_access_in in;
        int r;

        memcpy(&in, rq->body, sizeof(in));
        r = fs_access(rq->ll->fs, rq->h.nodeid, in.mask);
        return r < 0 ? r : reply_ok(rq, NULL, 0);
}

/* Packs directory entries into the scratch buffer. */
struct dirbuf {
        uint8_t *buf;
        size_t size, used;
        bool plus;
};

static int dirbuf_add(void *userdata, const char *name, size_t len, uint32_t mode, uint64_t ino, uint64_t next_off,
                      const struct fs_entry *entry) {
        struct dirbuf *b = userdata;
        size_t head = b->plus ? offsetof(struct fuse_direntplus, dirent.name) : offsetof(struct fuse_dirent, name);
        size_t rec = FUSE_DIRENT_ALIGN(head + len);
        struct fuse_dirent d = {
                .ino = ino,
                .off = next_off,
                .namelen = len,
                .type = (mode & S_IFMT) >> 12,
        };
        uint8_t *p;

        if (rec > b->size - b->used)
                return 0;
        p = b->buf + b->used;
        if (b->plus) {
                struct fuse_entry_out eo;
                entry_to_fuse(entry, &eo);
                memcpy(p, &eo, sizeof(eo));
                p += sizeof(eo);
        }
        memcpy(p, &d, offsetof(struct fuse_dirent, name));
        memcpy(p + offsetof(struct fuse_dirent, name), name, len);
        memset(p + offsetof(struct fuse_dirent, name) + len, 0, rec - head - len);
        b->used += rec;
        return 1;
}

static int readdir_common(struct req *rq, bool plus) {
        struct fuse_read_in in;
        struct dirbuf b;
        int r;

        memcpy(&in, rq->body, sizeof(in));
        b = (struct dirbuf){ .buf = rq->scratch, .size = MIN((size_t) in.size, rq->scratch_len), .plus = plus };
        r = fs_readdir(rq->ll->fs, rq->h.nodeid, in.fh, in.offset, plus, dirbuf_add, &b);
        if (r < 0 && b.used == 0)
                return r;
        return reply_ok(rq, rq->scratch, b.used);
}

static int do_readdir(struct req *rq) {
        return readdir_common(rq, false);
}

static int do_readdirplus(struct req *rq) {
        return readdir_common(rq, true);
}

static int do_interrupt(struct req *rq) {
        /* every request is answered synchronously: nothing to interrupt */
        return reply_none(rq);
}

static int do_notify_reply(struct req *rq) {
        return reply_none(rq);
}

static int do_erofs(struct req *rq) {
        return -EROFS;
}

static int do_enosys(struct req *rq) {
        return -ENOSYS;
}

/* Not a terminal, no ioctl of ours.  The kernel sends every ioctl on a
 * file (isatty()'s TCGETS, which Python does on each open) whatever the
 * answer: it does not remember ENOSYS here, it only turns it into ENOTTY,
 * so answer that. */
static int do_enotty(struct req *rq) {
        return -ENOTTY;
}

/* Indexed by opcode.  Write-type operations answer EROFS; operations the
 * kernel may stop sending once it sees ENOSYS (flush, fsync, locks, lseek,
 * statx...) answer ENOSYS so that it does.  IOCTL is the exception: see
 * do_enotty. */
static const struct op ops[FUSE_LL_OPCODE_MAX] = {
        [FUSE_LOOKUP] = { do_lookup, "LOOKUP", 1 },
        [FUSE_FORGET] = { do_forget, "FORGET", sizeof(struct fuse_forget_in) },
        [FUSE_GETATTR] = { do_getattr, "GETATTR", sizeof(struct fuse_getattr_in) },
        [FUSE_SETATTR] = { do_erofs, "SETATTR", 0 },
        [FUSE_READLINK] = { do_readlink, "READLINK", 0 },
        [FUSE_SYMLINK] = { do_erofs, "SYMLINK", 0 },
        [FUSE_MKNOD] = { do_erofs, "MKNOD", 0 },
        [FUSE_MKDIR] = { do_erofs, "MKDIR", 0 },
        [FUSE_UNLINK] = { do_erofs, "UNLINK", 0 },
        [FUSE_RMDIR] = { do_erofs, "RMDIR", 0 },
        [FUSE_RENAME] = { do_erofs, "RENAME", 0 },
        [FUSE_LINK] = { do_erofs, "LINK", 0 },
        [FUSE_OPEN] = { do_open, "OPEN", sizeof(struct fuse_open_in) },
        [FUSE_READ] = { do_read, "READ", sizeof(struct fuse_read_in) },
        [FUSE_WRITE] = { do_erofs, "WRITE", 0 },
        [FUSE_STATFS] = { do_statfs, "STATFS", 0 },
        [FUSE_RELEASE] = { do_release, "RELEASE", sizeof(struct fuse_release_in) },
        [FUSE_FSYNC] = { do_enosys, "FSYNC", 0 },
        [FUSE_SETXATTR] = { do_erofs, "SETXATTR", 0 },
        [FUSE_GETXATTR] = { do_getxattr, "GETXATTR", sizeof(struct fuse_getxattr_in) + 1 },
        [FUSE_LISTXATTR] = { do_listxattr, "LISTXATTR", sizeof(struct fuse_getxattr_in) },
        [FUSE_REMOVEXATTR] = { do_erofs, "REMOVEXATTR", 0 },
        [FUSE_FLUSH] = { do_enosys, "FLUSH", 0 },
        [FUSE_INIT] = { do_init, "INIT", 16 },
        [FUSE_OPENDIR] = { do_opendir, "OPENDIR", sizeof(struct fuse_open_in) },
        [FUSE_READDIR] = { do_readdir, "READDIR", sizeof(struct fuse_read_in) },
        [FUSE_RELEASEDIR] = { do_releasedir, "RELEASEDIR", sizeof(struct fuse_release_in) },
        [FUSE_FSYNCDIR] = { do_enosys, "FSYNCDIR", 0 },
        [FUSE_GETLK] = { do_enosys, "GETLK", 0 },
        [FUSE_SETLK] = { do_enosys, "SETLK", 0 },
        [FUSE_SETLKW] = { do_enosys, "SETLKW", 0 },
        [FUSE_ACCESS] = { do_access, "ACCESS", sizeof(struct fuse_access_in) },
        [FUSE_CREATE] = { do_erofs, "CREATE", 0 },
        [FUSE_INTERRUPT] = { do_interrupt, "INTERRUPT", sizeof(struct fuse_interrupt_in) },
        [FUSE_BMAP] = { do_enosys, "BMAP", 0 },
        [FUSE_DESTROY] = { do_destroy, "DESTROY", 0 },
        [FUSE_IOCTL] = { do_enotty, "IOCTL", 0 },
        [FUSE_POLL] = { do_enosys, "POLL", 0 },
        [FUSE_NOTIFY_REPLY] = { do_notify_reply, "NOTIFY_REPLY", 0 },
        [FUSE_BATCH_FORGET] = { do_batch_forget, "BATCH_FORGET", sizeof(struct fuse_batch_forget_in) },
        [FUSE_FALLOCATE] = { do_erofs, "FALLOCATE", 0 },
        [FUSE_READDIRPLUS] = { do_readdirplus, "READDIRPLUS", sizeof(struct fuse_read_in) },
        [FUSE_RENAME2] = { do_erofs, "RENAME2", 0 },
        [FUSE_LSEEK] = { do_enosys, "LSEEK", 0 },
        [FUSE_COPY_FILE_RANGE] = { do_erofs, "COPY_FILE_RANGE", 0 },
        [FUSE_SETUPMAPPING] = { do_enosys, "SETUPMAPPING", 0 },
        [FUSE_REMOVEMAPPING] = { do_enosys, "REMOVEMAPPING", 0 },
        [FUSE_SYNCFS] = { do_enosys, "SYNCFS", 0 },
        [FUSE_TMPFILE] = { do_erofs, "TMPFILE", 0 },
        [FUSE_STATX] = { do_enosys, "STATX", 0 },
        [FUSE_COPY_FILE_RANGE_64] = { do_erofs, "COPY_FILE_RANGE_64", 0 },
};

/* --- entry points --- */

int fuse_ll_new(struct fs *fs, const struct fuse_ll_caps *caps, const struct fuse_ll_config *cfg,
                struct fuse_ll **ret) {
        struct fuse_ll *ll;

        if (!fs || !caps || !ret)
                return -EINVAL;
        if (caps->backing && (!caps->backing->open || (caps->backing->probe && !caps->calls_reply_done)))
                return -EINVAL;
        ll = calloc(1, sizeof(*ll));
        if (!ll)
                return -ENOMEM;
        ll->fs = fs;
        ll->caps = *caps;
        if (cfg)
                ll->cfg = *cfg;
        if (ll->cfg.max_pages == 0)
                ll->cfg.max_pages = DEFAULT_MAX_PAGES;
        ll->cfg.max_pages = MIN(ll->cfg.max_pages, 65535u);
        ll->s = (struct session){ .max_read = KERNEL_DEFAULT_MAX_PAGES * PAGE, .passthrough_error = -ENOPROTOOPT };
        ll->backing = (struct fs_backing_ops){ .open = ll_backing_open, .close = ll_backing_close };
        *ret = ll;
        return 0;
}

void fuse_ll_free(struct fuse_ll *ll) {
        if (!ll)
                return;
        /* the kernel session ends with the engine: the fs forgets it, and
         * closes its backing files while the transport still can */
        fs_session_reset(ll->fs);
        free(ll);
}

size_t fuse_ll_request_size(const struct fuse_ll *ll) {
        return REQUEST_SIZE;
}

size_t fuse_ll_scratch_size(const struct fuse_ll *ll) {
        /* the largest READ copied from memory, with room for any other reply */
        return (size_t) ll->cfg.max_pages * PAGE + PAGE;
}

void fuse_ll_reply_done(struct fuse_ll *ll, struct fuse_ll_reply *reply) {
        if (!ll || !reply)
                return;
        if (reply->session_pending) {
                reply->session_pending = false;
                session_complete(ll);
        }
}

bool fuse_ll_passthrough(const struct fuse_ll *ll) {
        return ll->s.passthrough;
}

int fuse_ll_passthrough_error(const struct fuse_ll *ll) {
        return ll->s.passthrough ? 0 : ll->s.passthrough_error;
}

uint32_t fuse_ll_max_read(const struct fuse_ll *ll) {
        return ll->s.max_read;
}

bool fuse_ll_io_uring(const struct fuse_ll *ll) {
        return ll->s.io_uring;
}

static const char *op_name(uint32_t opcode) {
        if (opcode < FUSE_LL_OPCODE_MAX && ops[opcode].name)
                return ops[opcode].name;
        return "UNKNOWN";
}

int fuse_ll_handle(struct fuse_ll *ll, const void *req, size_t len, void *scratch, size_t scratch_len,
                   struct fuse_ll_reply *reply) {
        struct req rq = { .ll = ll, .scratch = scratch, .scratch_len = scratch_len, .reply = reply };
        const struct op *op = NULL;
        int r;

        *reply = (struct fuse_ll_reply){};
        if (!ll || !req || !scratch || scratch_len < PAGE) {
                reply->none = true;
                return -EINVAL;
        }
        if (len < sizeof(struct fuse_in_header)) {
                reply->none = true;
                return -EPROTO;
        }
        memcpy(&rq.h, req, sizeof(rq.h));
        reply->hdr.unique = rq.h.unique;
        rq.body = (const uint8_t *) req + sizeof(rq.h);
        rq.body_len = len - sizeof(rq.h);

        if (rq.h.len != len) {
                r = -EPROTO;
                goto malformed;
        }
        /* request extensions (security contexts, groups) trail the body */
        if ((size_t) rq.h.total_extlen * 8 > rq.body_len) {
                r = -EPROTO;
                goto malformed;
        }
        rq.body_len -= (size_t) rq.h.total_extlen * 8;

        if (rq.h.opcode < FUSE_LL_OPCODE_MAX && ops[rq.h.opcode].fn)
                op = &ops[rq.h.opcode];
        if (op && rq.body_len < op->min_in) {
                r = -EPROTO;
                goto malformed;
        }

        if (rq.h.opcode != FUSE_INIT) {
                if (__atomic_load_n(&ll->destroyed, __ATOMIC_ACQUIRE)) {
                        if (op && (op->fn == do_forget || op->fn == do_batch_forget || op->fn == do_interrupt))
                                reply->none = true;
                        else
                                reply_error(&rq, -ENOTCONN);
                        return -ESHUTDOWN;
                }
                if (!ll->s.initialized) {
                        if (op && (op->fn == do_forget || op->fn == do_batch_forget || op->fn == do_interrupt))
                                reply->none = true;
                        else
                                reply_error(&rq, -EIO);
                        return 0;
                }
        }

        r = op ? op->fn(&rq) : -ENOSYS;
        if (ll->cfg.debug)
                log_debug("%s unique=%" PRIu64 " nodeid=%" PRIu64 " len=%u: %s", op_name(rq.h.opcode), rq.h.unique,
                          rq.h.nodeid, rq.h.len, r < 0 ? strerror(-r) : "ok");
        if (r == -EPROTO)
                goto malformed;
        if (r < 0)
                reply_error(&rq, r);
        if (!ll->caps.calls_reply_done)
                fuse_ll_reply_done(ll, reply);
        if (op && op->fn == do_destroy)
                return -ESHUTDOWN;
        return 0;

malformed:
        if (ll->cfg.debug)
                log_debug("Malformed %s request (unique=%" PRIu64 ", %zu bytes)", op_name(rq.h.opcode), rq.h.unique,
                          len);
        if (!reply->none)
                reply_error(&rq, -EIO);
        if (op && (op->fn == do_forget || op->fn == do_batch_forget || op->fn == do_interrupt ||
                   op->fn == do_notify_reply))
                reply->none = true;
        return -EPROTO;
}
