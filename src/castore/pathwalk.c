/* Path resolution below a node, one Directory fetch per component. */
#include "castore/pathwalk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int cas_walk_path(struct cas_dir_service *dirs, const struct cas_node *start, const char *subpath,
                  struct cas_node *ret, void **ret_mem) {
        struct cas_node cur;
        void *cur_mem = NULL;
        const char *p = subpath ? subpath : "";
        int r;

        r = cas_node_copy(start, &cur, &cur_mem);
        if (r < 0)
                return r;
        for (;;) {
                _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
                const struct cas_node *child;
                size_t len;

                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                len = strcspn(p, "/");
                if (len == 1 && p[0] == '.') {
                        p += len;
                        continue;
                }
                if (len == 2 && p[0] == '.' && p[1] == '.') {
                        r = -EINVAL;
                        break;
                }
                if (cur.kind != CAS_NODE_DIRECTORY) {
                        r = -ENOTDIR;
                        break;
                }
                r = cas_dir_get(dirs, &cur.digest, &d);
                if (r < 0)
                        break;
                child = cas_directory_find(d, p, len);
                if (!child) {
                        r = -ENOENT;
                        break;
                }
                void *mem;
                struct cas_node next;
                r = cas_node_copy(child, &next, &mem);
                if (r < 0)
                        break;
                free(cur_mem);
                cur = next;
                cur_mem = mem;
                p += len;
        }
        if (r < 0) {
                free(cur_mem);
                return r;
        }
        *ret = cur;
        *ret_mem = cur_mem;
        return 0;
}
