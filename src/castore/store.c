/* Opening a store: picks the backends for a URL (memory://, a local store
 * directory) and, for the local store, creates or checks its layout. */
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"

void cas_store_free(struct cas_store *s) {
        if (!s)
                return;
        cas_root_service_free(s->roots);
        cas_dir_service_free(s->dirs);
        cas_blob_service_free(s->blobs);
        free(s->url);
        free(s);
}

static int open_memory(struct cas_store *s) {
        int r;

        r = cas_blob_memory_new(&s->blobs);
        if (r >= 0)
                r = cas_dir_memory_new(&s->dirs);
        if (r >= 0)
                r = cas_root_memory_new(&s->roots);
        return r;
}

static int open_local(struct cas_store *s, const char *path, unsigned flags) {
        return log_error_errno(-EOPNOTSUPP, "Local store %s: not available in this build yet", path);
}

int cas_store_open(const char *url, unsigned flags, struct cas_store **ret) {
        _cleanup_(cas_store_freep) struct cas_store *s = NULL;
        const char *sep;
        int r;

        if (!url || !*url || !ret)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->url = strdup(url);
        if (!s->url)
                return -ENOMEM;

        sep = strstr(url, "://");
        if (sep && strcmp(url, "memory://") == 0)
                r = open_memory(s);
        else if (sep && strncmp(url, "local://", 8) == 0 && url[8])
                r = open_local(s, url + 8, flags);
        else if (!sep)
                r = open_local(s, url, flags);
        else
                return log_error_errno(-EINVAL, "Unsupported store URL '%s' (use memory://, a directory or local://PATH)",
                                       url);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}
