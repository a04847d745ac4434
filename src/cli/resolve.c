/* Resolution of ROOT[/sub/path] command arguments to nodes: ROOT is a
 * named root or a store path basename. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "castore/pathwalk.h"
#include "cli/cli.h"
#include "util/log.h"

int cli_resolve(struct cas_store *store, struct nix_pathinfo_service *pis, const char *arg, struct cas_node *ret,
                void **ret_mem) {
        const char *slash = strchr(arg, '/');
        size_t len = slash ? (size_t) (slash - arg) : strlen(arg);
        _cleanup_free_ void *root_mem = NULL;
        struct cas_node root;
        int r;

        if (len == 0)
                return log_error_errno(-EINVAL, "\"%s\": expected ROOT[/PATH]", arg);
        r = cas_root_get(store->roots, arg, len, &root, &root_mem);
        /* then a store path basename; the PathInfo service's own errors (a
         * daemon out of reach) are reported as they are, not as "no root" */
        if (r == -ENOENT && pis)
                r = nix_root_lookup(pis, arg, len, &root, &root_mem);
        if (r == -ENOENT)
                return log_error_errno(r, "No root named \"%.*s\" in %s", (int) len, arg, cli_store_url());
        if (r < 0)
                return log_error_errno(r, "Failed to look up root \"%.*s\" in %s: %m", (int) len, arg,
                                       cli_store_url());
        r = cas_walk_path(store->dirs, &root, slash ? slash + 1 : "", ret, ret_mem);
        if (r == -ENOENT)
                return log_error_errno(r, "%s: No such file or directory", arg);
        if (r == -ENOTDIR)
                return log_error_errno(r, "%s: Not a directory", arg);
        if (r == -EINVAL)
                return log_error_errno(r, "%s: \"..\" is not allowed", arg);
        if (r < 0)
                return log_error_errno(r, "%s: %m", arg);
        return 0;
}
