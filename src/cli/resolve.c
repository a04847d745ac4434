/* Resolution of NAME[/sub/path] command arguments: the library's
 * nix_resolve (store/resolve.h), with its error logged. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/log.h"

int cli_resolve(struct cas_store *store, struct nix_pathinfo_service *pis, const char *arg, unsigned flags,
                struct nix_resolved *ret) {
        char err[1024] = "";
        int r;

        r = nix_resolve(store, pis, arg, flags, ret, err, sizeof(err));
        if (r >= 0)
                return 0;
        if (!err[0])
                snprintf(err, sizeof(err), "%s: %s", arg, strerror(-r));
        if (r == -ENOENT || r == -ENOTDIR || r == -EINVAL)
                log_error("%s", err);
        else /* a service's error: say which store */
                log_error("%s: %s", cli_store_url(), err);
        /* nix_resolve's -EINVAL is a malformed NAME: a usage error */
        return r;
}
