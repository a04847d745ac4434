/* Resolution of NAME[/sub/path] command arguments: the library's
 * nix_resolve (store/resolve.h), with its error logged. */
#include <errno.h>

#include "cli/cli.h"
#include "util/log.h"

int cli_resolve(struct cas_store *store, struct nix_pathinfo_service *pis, const char *arg, unsigned flags,
                struct nix_resolved *ret) {
        char err[1024] = "";
        int r;

        r = nix_resolve(store, pis, arg, flags, ret, err, sizeof(err));
        if (r >= 0)
                return 0;
        if (err[0])
                log_error("%s", err);
        else
                log_error_errno(r, "%s: %m", arg);
        /* nix_resolve's -EINVAL is a malformed NAME: a usage error */
        return r;
}
