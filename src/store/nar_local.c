/* NAR of a local tree: walks a file, symlink or directory on disk in NAR
 * order, hands each node to the NAR writer (hash only) and computes the
 * castore root node an import of the same tree yields (see nar.h). */
#include "store/nar.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "castore/localfs.h"
#include "util/io.h"
#include "util/log.h"

#define LOCAL_CHUNK (1024 * 1024)

struct local_walk {
        struct nar_writer w; /* no sink: size and SHA-256 only */
        bool skip_special;
        uint8_t *chunk;      /* LOCAL_CHUNK bytes */
};

static int local_node(struct local_walk *lw, int dfd, const char *name, const char *path, unsigned depth,
                      struct cas_node *ret, char **ret_target);

/* Logs and returns the error of opening or reading a node that was just
 * listed or stat'ed: one that vanished, or is now of another kind, means
 * that the tree changed under the walk (-ESTALE). */
static int read_error(int r, const char *path) {
        if (r == -ENOENT || r == -ELOOP || r == -ENOTDIR || r == -EAGAIN || r == -EINVAL)
                return log_error_errno(-ESTALE, "%s: changed while being read", path);
        return log_error_errno(r, "%s: %m", path);
}

/* One pass over the file: NAR contents and BLAKE3 digest together. */
static int local_file(struct local_walk *lw, int dfd, const char *name, const char *path, struct cas_node *ret) {
        _cleanup_close_ int fd = -1;
        struct cas_hasher b3;
        struct stat st;
        uint64_t got = 0;
        int r;

        fd = cas_local_open_file(dfd, name, &st);
        if (fd < 0)
                return read_error(fd, path);
        *ret = (struct cas_node){ .kind = CAS_NODE_FILE, .executable = st.st_mode & S_IXUSR,
                                  .size = (uint64_t) st.st_size };
        r = nar_write_file_begin(&lw->w, ret->executable, ret->size);
        if (r < 0)
                return r;
        cas_hasher_init(&b3);
        for (;;) {
                ssize_t n = loop_read(fd, lw->chunk, LOCAL_CHUNK);
                if (n < 0)
                        return log_error_errno((int) n, "%s: %m", path);
                if (n == 0)
                        break;
                got += (uint64_t) n;
                if (got > ret->size)
                        break;
                cas_hasher_update(&b3, lw->chunk, (size_t) n);
                r = nar_write_contents(&lw->w, lw->chunk, (size_t) n);
                if (r < 0)
                        return r;
        }
        if (got != ret->size)
                return log_error_errno(-ESTALE, "%s: changed size while being read", path);
        cas_hasher_final(&b3, &ret->digest);
        return nar_write_file_end(&lw->w);
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b); /* bytewise */
}

/* Children in name order, special files left out (or refused); builds the
 * Directory from their nodes for the digest and size. */
static int local_dir(struct local_walk *lw, int dfd, const char *name, const char *path, unsigned depth,
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
                return read_error(negative_errno(), path);
        r = cas_local_list(fd, &names, &n);
        if (r < 0)
                return log_error_errno(r, "%s: %m", path);
        if (n > 1) /* an empty directory has no array at all */
                qsort(names, n, sizeof(char *), name_cmp);
        nodes = calloc(n ? n : 1, sizeof(*nodes));
        targets = calloc(n ? n : 1, sizeof(*targets));
        r = nodes && targets ? nar_write_directory_begin(&lw->w) : -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ char *sub = NULL;
                struct stat st;

                if (asprintf(&sub, "%s/%s", path, names[i]) < 0) {
                        r = -ENOMEM;
                        break;
                }
                if (fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = read_error(negative_errno(), sub);
                        break;
                }
                if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
                        if (lw->skip_special)
                                continue;
                        r = log_error_errno(-EINVAL, "%s: %s refused", sub, cas_local_kind(st.st_mode));
                        break;
                }
                r = nar_write_entry_begin(&lw->w, names[i], strlen(names[i]));
                if (r >= 0)
                        r = local_node(lw, fd, names[i], sub, depth + 1, &nodes[kept], &targets[kept]);
                if (r >= 0)
                        r = nar_write_entry_end(&lw->w);
                if (r < 0)
                        break;
                nodes[kept].name = names[i];
                nodes[kept].name_len = strlen(names[i]);
                kept++;
        }
        if (r >= 0)
                r = nar_write_directory_end(&lw->w);
        if (r >= 0) {
                enum cas_verr why;
                r = cas_directory_new(nodes, kept, &d, &why);
                if (r == -EBADMSG)
                        log_error("%s: %s", path, cas_verr_str(why));
        }
        if (r >= 0)
                *ret = (struct cas_node){ .kind = CAS_NODE_DIRECTORY, .digest = d->digest, .size = d->size };
        for (size_t i = 0; targets && i < n; i++) /* set up to kept, NULL after */
                free(targets[i]);
        cas_local_names_free(names, n);
        return r;
}

static int local_node(struct local_walk *lw, int dfd, const char *name, const char *path, unsigned depth,
                      struct cas_node *ret, char **ret_target) {
        struct stat st;
        char *target;
        size_t len;
        int r;

        *ret_target = NULL;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) /* below the root: listed a moment ago */
                return depth > 0 ? read_error(negative_errno(), path) : log_error_errno(negative_errno(), "%s: %m", path);
        if (S_ISREG(st.st_mode))
                return local_file(lw, dfd, name, path, ret);
        if (S_ISDIR(st.st_mode))
                return local_dir(lw, dfd, name, path, depth, ret);
        if (!S_ISLNK(st.st_mode))
                return log_error_errno(-EINVAL, "%s: %s refused", path, cas_local_kind(st.st_mode));
        r = cas_local_readlink(dfd, name, &target, &len);
        if (r == -ENAMETOOLONG || r == -ENOMEM)
                return log_error_errno(r, "%s: cannot read symlink: %m", path);
        if (r < 0)
                return read_error(r, path);
        *ret_target = target;
        *ret = (struct cas_node){ .kind = CAS_NODE_SYMLINK, .target = target, .target_len = len };
        return nar_write_symlink(&lw->w, target, len);
}

int nar_hash_local(const char *path, bool skip_special, uint64_t *ret_nar_size, uint8_t ret_sha256[NIX_SHA256_LEN],
                   struct cas_node *ret_root, void **ret_mem) {
        _cleanup_free_ uint8_t *chunk = NULL;
        struct local_walk lw = { .skip_special = skip_special };
        struct cas_node root;
        char *target = NULL;
        int r;

        if (!path || !ret_nar_size || !ret_sha256 || !ret_root || !ret_mem)
                return -EINVAL;
        chunk = malloc(LOCAL_CHUNK);
        if (!chunk)
                return -ENOMEM;
        lw.chunk = chunk;
        r = nar_writer_init(&lw.w, NULL, NULL, true);
        if (r < 0)
                return r;
        r = nar_write_magic(&lw.w);
        if (r >= 0)
                r = local_node(&lw, AT_FDCWD, path, path, 0, &root, &target);
        if (r < 0) {
                nar_writer_free(&lw.w);
                free(target);
                return r;
        }
        r = nar_writer_finish(&lw.w, ret_nar_size, ret_sha256);
        if (r < 0) {
                free(target);
                return r;
        }
        root.name = "";
        root.name_len = 0;
        *ret_root = root;
        *ret_mem = target;
        return 0;
}
