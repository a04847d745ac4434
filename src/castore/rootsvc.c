/* Root service wrappers: argument and name checks, -EOPNOTSUPP for missing
 * ops.  Backends may rely on names and nodes being valid. */
#include "castore/rootsvc.h"

#include <errno.h>
#include <stdbool.h>

/* Root names are Directory entry names that are also safe to print: no
 * control characters, which would let a name rewrite a terminal's
 * listing. */
bool cas_root_name_valid(const char *name, size_t len) {
        if (cas_name_check(name, len) != CAS_VERR_NONE)
                return false;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) name[i] < 0x20 || name[i] == 0x7f)
                        return false;
        return true;
}

int cas_root_get(struct cas_root_service *s, const char *name, size_t len, struct cas_node *ret, void **ret_mem) {
        if (!s || (!name && len > 0) || !ret || !ret_mem)
                return -EINVAL;
        if (!s->ops->get)
                return -EOPNOTSUPP;
        /* An invalid name cannot have been stored: not found, not an error
         * of the caller (lookups come straight from the filesystem). */
        if (!cas_root_name_valid(name, len))
                return -ENOENT;
        return s->ops->get(s, name, len, ret, ret_mem);
}

int cas_root_put(struct cas_root_service *s, const struct cas_node *n) {
        if (!s || !n)
                return -EINVAL;
        if (!s->ops->put)
                return -EOPNOTSUPP;
        if (cas_node_check(n, 0) != CAS_VERR_NONE || !cas_root_name_valid(n->name, n->name_len))
                return -EINVAL;
        return s->ops->put(s, n);
}

int cas_root_remove(struct cas_root_service *s, const char *name, size_t len) {
        if (!s || (!name && len > 0))
                return -EINVAL;
        if (!s->ops->remove)
                return -EOPNOTSUPP;
        if (!cas_root_name_valid(name, len))
                return -ENOENT;
        return s->ops->remove(s, name, len);
}

int cas_root_list(struct cas_root_service *s, cas_root_list_cb cb, void *userdata) {
        if (!s || !cb)
                return -EINVAL;
        if (!s->ops->list)
                return -EOPNOTSUPP;
        return s->ops->list(s, cb, userdata);
}

void cas_root_service_free(struct cas_root_service *s) {
        if (s && s->ops->free)
                s->ops->free(s);
}
