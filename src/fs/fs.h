/* The read-only filesystem over a castore store, independent of any
 * transport: inode table, lazy directory loading, file handles, attributes
 * and the operations a FUSE (or other) front end maps requests onto.
 * Behaviour follows SPEC §4.  Every function is thread-safe except the
 * session ones (fs_session_reset, fs_set_backing) and fs_free, which run
 * with no operation in progress. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "castore/blobsvc.h"
#include "castore/directory.h"
#include "castore/dirsvc.h"
#include "castore/rootsvc.h"

#define FS_ROOT_INO 1

/* The xattr names the filesystem answers. */
#define FS_XATTR_BLOB_DIGEST "user.castore.blob.digest"
#define FS_XATTR_DIRECTORY_DIGEST "user.castore.directory.digest"

/* --- root providers ---
 * The filesystem root is virtual: it shows named roots from one or more
 * providers (the root service's named roots now; store paths from the
 * PathInfo service later).  A provider answers an exact-name lookup and
 * lists its roots in ascending name order (cas_name_compare).  When
 * several providers know a name, the first one given wins. */
typedef int (*fs_root_list_cb)(void *userdata, const struct cas_node *n);

struct fs_root_ops {
        const char *name;
        /* 0 and the root node called name (its strings in *ret_mem, which the
         * caller free()s), -ENOENT if there is none, or another -errno. */
        int (*lookup)(void *ctx, const char *name, size_t len, struct cas_node *ret, void **ret_mem);
        /* Calls cb for each root in ascending name order; the node is borrowed
         * for the call.  A negative cb result stops the walk and is returned. */
        int (*list)(void *ctx, fs_root_list_cb cb, void *userdata);
};

struct fs_root_provider {
        const struct fs_root_ops *ops;
        void *ctx;
};

/* Named roots of a root service: ctx is a struct cas_root_service *. */
extern const struct fs_root_ops fs_root_service_ops;

/* --- configuration --- */
struct fs_config {
        uint32_t uid, gid;     /* owner of every inode */
        bool list_root;        /* root readdir allowed (else opendir -> EPERM) */
        const struct fs_root_provider *roots; /* copied by fs_new */
        size_t n_roots;
        /* Blob readers kept open, idle, after their last use (each holds a
         * file descriptor and, with passthrough, a backing id); 0 = 1024. */
        unsigned idle_readers;
        /* Entries of fetched Directories kept in memory (least recently
         * used dropped first, fetched again when needed); 0 = 65536. */
        size_t dir_cache_entries;
        /* With passthrough, also hand the kernel blob files it does not
         * verify itself (no fs-verity): reads of those files then skip
         * castore's verification (--passthrough=on).  Otherwise only
         * fs-verity files are handed over. */
        bool passthrough_unverified;
};

/* Passthrough hooks: a front end that can hand an open file descriptor to
 * the kernel (FUSE passthrough) gives them; opens then register local blob
 * files through open() (an id >= 0, or -errno: that file is served without
 * passthrough) and close() is called when the inode's reader is closed. */
struct fs_backing_ops {
        int (*open)(void *ctx, int fd);
        void (*close)(void *ctx, int id);
};

struct fs;

/* blobs and dirs are borrowed and must outlive the filesystem. */
int fs_new(struct cas_blob_service *blobs, struct cas_dir_service *dirs, const struct fs_config *cfg,
           struct fs **ret);
void fs_free(struct fs *fs);

/* --- sessions ---
 * The protocol engine (src/fuse) owns the kernel session and is the one
 * caller of these two: at INIT, and when it goes away.  Call with no
 * operation running. */

/* A new kernel session: drops every inode the previous kernel knew except
 * the root, and every open file and directory handle (the old kernel is
 * gone with all its references and never releases them).  Backing ids of
 * the old session are closed through its backing ops, which are then
 * dropped: no passthrough until fs_set_backing. */
void fs_session_reset(struct fs *fs);

/* Enables passthrough for the session with ops (NULL disables it). */
void fs_set_backing(struct fs *fs, const struct fs_backing_ops *ops, void *ctx);

/* --- replies --- */
struct fs_timeout {
        uint64_t sec;
        uint32_t nsec;
};

struct fs_attr {
        uint64_t ino;
        uint64_t size;
        uint64_t blocks;   /* 512-byte units */
        uint64_t time;     /* atime = mtime = ctime, seconds */
        uint32_t time_nsec;
        uint32_t mode;     /* S_IFxxx | permission bits */
        uint32_t nlink;
        uint32_t uid, gid;
        uint32_t blksize;
};

/* A lookup result.  ino == 0 is a negative entry: the name does not exist,
 * and may be remembered as absent for entry_valid. */
struct fs_entry {
        uint64_t ino;
        uint64_t generation;
        struct fs_timeout entry_valid, attr_valid;
        struct fs_attr attr;
};

/* --- operations --- all return 0 (or a length) or -errno. */

/* Looks name up in directory parent.  A positive result counts one kernel
 * reference (nlookup) on the inode, dropped by fs_forget.  At the root an
 * unknown name is -ENOENT (never cached: roots may appear later); below it,
 * a negative entry.  -EIO if parent's Directory cannot be fetched. */
int fs_lookup(struct fs *fs, uint64_t parent, const char *name, size_t len, struct fs_entry *ret);

/* Drops n kernel references; the inode is freed once none remain and no
 * handle uses it.  Unknown inodes are ignored. */
void fs_forget(struct fs *fs, uint64_t ino, uint64_t n);

int fs_getattr(struct fs *fs, uint64_t ino, struct fs_attr *ret, struct fs_timeout *ret_valid);

/* Copies the target (no NUL) into buf; returns its length; -ERANGE if it
 * does not fit; -EINVAL if ino is not a symlink. */
int fs_readlink(struct fs *fs, uint64_t ino, char *buf, size_t size);

struct fs_open {
        uint64_t fh;
        bool keep_cache;  /* content may stay in the page cache across opens */
        bool cache_dir;   /* directory listing may be cached */
        int backing_id;   /* >= 0: passthrough to this backing id */
};

/* Opens a directory for reading.  The root: -EPERM unless list_root (then
 * a snapshot of the roots is taken for this handle).  Other directories:
 * -EIO if the Directory is missing. */
int fs_opendir(struct fs *fs, uint64_t ino, struct fs_open *ret);

/* Whether directory handles carry state.  Without --list-root they do
 * not: fs_readdir works with fh 0 (the root then answers EPERM, a missing
 * Directory EIO), so a front end may skip opendir/releasedir altogether
 * and let the kernel cache listings. */
bool fs_dir_handles_needed(const struct fs *fs);

int fs_releasedir(struct fs *fs, uint64_t ino, uint64_t fh);

/* Called by fs_readdir for each entry.  entry is non-NULL for readdirplus
 * (and then counts a kernel reference).  Returns 1 if the entry was taken,
 * 0 if there was no room (the walk stops and the reference is undone), or
 * -errno. */
typedef int (*fs_dirent_cb)(void *userdata, const char *name, size_t len, uint32_t mode, uint64_t ino,
                            uint64_t next_off, const struct fs_entry *entry);

/* Lists entries in name order from offset off (0 = start; each entry's
 * next_off resumes after it).  "." and ".." are not listed. */
int fs_readdir(struct fs *fs, uint64_t ino, uint64_t fh, uint64_t off, bool plus, fs_dirent_cb cb,
               void *userdata);

/* Opens a file for reading: -EROFS for write access, -EISDIR/-ELOOP for
 * other kinds, -EIO if the blob is missing, unreadable or does not match
 * its digest (checked when the inode's reader is opened).  File handles
 * carry state only with passthrough (the backing id): fs_read also works
 * with fh 0, opening and checking the blob on first use. */
int fs_open(struct fs *fs, uint64_t ino, int flags, struct fs_open *ret);
/* The blob reader stays open, idle, after the last release (bounded). */
int fs_release(struct fs *fs, uint64_t ino, uint64_t fh);

/* The outcome of a read: len bytes of verified file data in the caller's
 * buffer (0 past the end of the file). */
struct fs_read_result {
        size_t len;
};

/* Reads up to size bytes at off into buf (size bytes), through an open
 * handle, or with fh 0 without one (the blob is then opened and checked on
 * first use: -EIO as for fs_open).  The data is always a copy, verified
 * against the blob's digest (cas_vblob_pread): -EIO if the range does not
 * match, and buf's contents are then undefined.  -EBADF for a handle that
 * is not open.  Thread-safe. */
int fs_read(struct fs *fs, uint64_t ino, uint64_t fh, uint64_t off, size_t size, void *buf,
            struct fs_read_result *ret);

struct fs_statfs {
        uint64_t blocks, bfree, bavail, files, ffree;
        uint32_t bsize, namelen, frsize;
};
int fs_statfs(struct fs *fs, uint64_t ino, struct fs_statfs *ret);

/* Extended attributes.  size 0 asks for the length; -ERANGE if buf is too
 * small; -ENODATA for unknown names.  Return the length. */
ssize_t fs_getxattr(struct fs *fs, uint64_t ino, const char *name, void *buf, size_t size);
ssize_t fs_listxattr(struct fs *fs, uint64_t ino, void *buf, size_t size);

/* access(2): -EROFS for W_OK, -EACCES for X_OK on a non-executable file. */
int fs_access(struct fs *fs, uint64_t ino, int mask);

/* Counters for tests and logs. */
struct fs_stats {
        uint64_t inodes;        /* live inodes, root included */
        uint64_t dirs_loaded;   /* directories whose Directory is in memory */
        uint64_t dir_fetches;   /* Directory fetches since start */
        uint64_t dir_fetch_waits; /* lookups that waited for another thread's fetch */
        uint64_t blob_opens;    /* verified blob opens (outboard checked) since start */
        uint64_t verify_failures; /* reads refused: bytes that did not match the digest */
        uint64_t open_files;    /* inodes with an open blob reader (in use or idle) */
};
void fs_get_stats(struct fs *fs, struct fs_stats *ret);
