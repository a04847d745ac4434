/* What castore mount and castore virtiofs serve: the store opened
 * read-only, its PathInfo service, the root providers (Nix store path
 * basenames, asked first, and named roots) and the filesystem over them; plus
 * the options both commands share. */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/io.h"
#include "util/log.h"
#include "util/sandbox.h"

int cli_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *ret) {
        unsigned long v;
        char *end;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* --sandbox=auto (default) or none; set while parsing, before threads. */
static bool sandbox_off;

int cli_fs_option(const char *cmd, int opt, const char *arg, struct fs_config *cfg) {
        unsigned long v;

        if (cli_common_option(opt, arg))
                return 1;
        switch (opt) {
        case CLI_OPT_LIST_ROOT:
                cfg->list_root = true;
                return 1;
        case CLI_OPT_UID:
        case CLI_OPT_GID:
                if (cli_parse_uint(arg, 0, UINT32_MAX - 1, &v) < 0)
                        return cli_usage_error(cmd, "bad --%s \"%s\"", opt == CLI_OPT_UID ? "uid" : "gid", arg);
                *(opt == CLI_OPT_UID ? &cfg->uid : &cfg->gid) = (uint32_t) v;
                return 1;
        case CLI_OPT_SANDBOX:
                if (strcmp(arg, "auto") != 0 && strcmp(arg, "none") != 0)
                        return cli_usage_error(cmd, "--sandbox takes auto or none");
                sandbox_off = strcmp(arg, "none") == 0;
                return 1;
        }
        return 0;
}

/* Appends the absolute path of dir (a local store URL or directory). */
static int add_path(char **paths, size_t *n, const char *dir, const char *what) {
        if (strncmp(dir, "local://", 8) == 0)
                dir += 8;
        paths[*n] = realpath(dir, NULL);
        if (!paths[*n])
                return log_error_errno(negative_errno(), "Cannot resolve the %s path %s: %m", what, dir);
        (*n)++;
        return 0;
}

int cli_store_paths(struct cas_store *store, char *ret[CLI_STORE_PATHS_MAX]) {
        size_t n = 0;
        int r = 0;

        memset(ret, 0, CLI_STORE_PATHS_MAX * sizeof(*ret));
        /* a remote store's files are its cache's; memory:// has none */
        struct cas_store *local = store->lmdb ? store : store->cache;
        if (local)
                r = add_path(ret, &n, local->url, "store");
        /* a cache beside a local store (whose blobs are an object store's) */
        if (r >= 0 && store->lmdb && store->cache)
                r = add_path(ret, &n, store->cache->url, "cache");
        if (r >= 0 && (ret[n] = cli_objstore_dir()))
                n++;
        if (r < 0)
                cli_store_paths_free(ret);
        return r;
}

void cli_store_paths_free(char **paths) {
        for (size_t i = 0; i < CLI_STORE_PATHS_MAX; i++)
                free(TAKE_PTR(paths[i]));
}

int cli_served_confine(struct cli_served *s, bool keep_sys_admin, bool io_uring, const char *socket) {
        const char *rm[2] = { NULL, NULL };
        /* a daemon that connects resolves names and checks certificates:
         * /etc (resolv.conf, hosts, nsswitch, ssl) and /usr (NSS modules) */
        static const char *const net_ro[] = { "/etc", "/usr", NULL };
        _cleanup_free_ char *sock_dir = NULL;
        struct sandbox_config c = {
                .rw_paths = (const char *const *) s->rw_paths, .remove_paths = rm,
                .keep_sys_admin = keep_sys_admin, .network = s->remote,
                .io_uring = io_uring,
                .ro_paths = s->remote ? net_ro : NULL,
        };

        if (sandbox_off) {
                log_info("Not confined (--sandbox=none)");
                return 0;
        }
        if (socket) {
                char *slash;

                sock_dir = realpath(socket, NULL);
                slash = sock_dir ? strrchr(sock_dir, '/') : NULL;
                if (!slash)
                        return log_error_errno(-EINVAL, "Cannot resolve the socket path %s", socket);
                slash[slash == sock_dir] = 0; /* "/x" -> "/" */
                rm[0] = sock_dir;
        }
        return sandbox_enter(&c);
}

int cli_served_open(struct fs_config *cfg, struct cli_served *ret) {
        struct cli_served s = {};
        int r;

        /* The server's memory grows with the inodes the kernel holds and
         * shrinks when it forgets them.  glibc raises its mmap and trim
         * thresholds (up to 32 MiB) each time a large block is freed, after
         * which the per-thread heaps keep what a forget burst frees (the
         * filesystem trims, but a thread heap's top only goes above the
         * trim threshold).  Fixed ones: heaps trimmed above 128 KiB
         * (glibc's default), blocks from 512 KiB mapped (above the 256 KiB
         * buffers of blob copies, so those do not map and unmap). */
        mallopt(M_TRIM_THRESHOLD, 128 * 1024);
        mallopt(M_MMAP_THRESHOLD, 512 * 1024);

        r = cli_store_open(CAS_STORE_READONLY | CLI_STORE_SERVING, &s.store, &s.pathinfo);
        if (r < 0)
                return r;
        r = nix_root_service_new(s.pathinfo, &s.nix_roots);
        if (r < 0) {
                cli_served_close(&s);
                return log_error_errno(r, "Failed to open the PathInfo service: %m");
        }
        s.remote = cli_store_is_shared(); /* reconnects inside the sandbox */
        r = cli_store_paths(s.store, s.rw_paths);
        if (r < 0) {
                cli_served_close(&s);
                return r;
        }
        s.providers[0] = (struct fs_root_provider){ .ops = &fs_root_service_ops, .ctx = s.nix_roots };
        s.providers[1] = (struct fs_root_provider){ .ops = &fs_root_service_ops, .ctx = s.store->roots };
        cfg->roots = s.providers;
        cfg->n_roots = ELEMENTSOF(s.providers);
        r = fs_new(s.store->blobs, s.store->dirs, cfg, &s.fs);
        if (r < 0) {
                cli_served_close(&s);
                return log_error_errno(r, "Failed to set up the filesystem: %m");
        }
        *ret = s;
        return 0;
}

void cli_served_close(struct cli_served *s) {
        if (s->fs)
                fs_free(s->fs);
        cas_root_service_free(s->nix_roots);
        nix_pathinfo_service_free(s->pathinfo);
        cas_store_free(s->store);
        cli_store_paths_free(s->rw_paths);
        *s = (struct cli_served){};
}
