/* snix's store composition file (TOML) turned into service addresses:
 * [blobservices.NAME], [directoryservices.NAME], [pathinfoservices.NAME],
 * each with a `type`, one of each named `root`.  The compositions castore
 * can build (see services.h):
 *   - every root of type "grpc" (url = "grpc+unix://..." / "grpc+http://...");
 *   - a root "combined" (blobs) or "cache" (directories, path infos)
 *     with near = a local store and far = grpc: the write-back cache (one
 *     local store; castore then caches all three services in it);
 *   - every root "memory", or every root "local" (castore's embedded
 *     store, path = "/dir"; not a snix type), the same for all three;
 *   - directory and PathInfo roots of type "postgresql" (castore's; url =
 *     "postgresql://..."), with a "local" or "memory" blob root.
 * Anything else is refused, naming the table and saying why. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "remote/services.h"
#include "util/toml.h"

static const char *const kinds[3] = { "blobservices", "directoryservices", "pathinfoservices" };

struct resolved {
        const char *type; /* "grpc", "memory", "local" */
        const char *where; /* url or path; NULL for memory */
        const char *cache; /* the near local store of a cache, or NULL */
};

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

/* A leaf service: grpc, memory or local. */
static int leaf(const struct toml_table *kind_tab, const char *kind, const char *name, struct resolved *ret, char *err,
                size_t errlen) {
        const struct toml_table *t = toml_table_get(kind_tab, name);
        const char *type = NULL;

        if (!t)
                return fail(err, errlen, "[%s.%s] is referred to but not defined", kind, name);
        if (toml_get_string(t, "type", &type) < 0)
                return fail(err, errlen, "[%s.%s] needs type = \"...\"", kind, name);
        *ret = (struct resolved){ .type = type };
        if (strcmp(type, "memory") == 0)
                return 0;
        if (strcmp(type, "grpc") == 0) {
                if (toml_get_string(t, "url", &ret->where) < 0 || !remote_url_is_grpc(ret->where))
                        return fail(err, errlen, "[%s.%s] type grpc needs url = \"grpc+unix:///path\" or "
                                                 "\"grpc+http://host:port\"", kind, name);
                return 0;
        }
        if (strcmp(type, "postgresql") == 0 && strcmp(kind, "blobservices") != 0) {
                if (toml_get_string(t, "url", &ret->where) < 0 || !remote_url_is_pg(ret->where))
                        return fail(err, errlen, "[%s.%s] type postgresql needs url = \"postgresql://...\"", kind,
                                    name);
                return 0;
        }
        if (strcmp(type, "local") == 0) {
                if (toml_get_string(t, "path", &ret->where) < 0 || ret->where[0] != '/')
                        return fail(err, errlen, "[%s.%s] type local needs path = \"/absolute/dir\"", kind, name);
                return 0;
        }
        return fail(err, errlen, "[%s.%s]: type \"%s\" is not supported here (castore composes grpc, memory, "
                                 "local, postgresql for directories and path infos, and a cache of a local "
                                 "store in front of grpc)", kind, name, type);
}

static int resolve_root(const struct toml_table *doc, int k, struct resolved *ret, char *err, size_t errlen) {
        const char *kind = kinds[k];
        const struct toml_table *kind_tab = toml_table_get(doc, kind);
        const struct toml_table *root = toml_table_get(kind_tab, "root");
        const char *type = NULL, *near = NULL, *far = NULL;
        struct resolved n, f;
        int r;

        if (!root)
                return fail(err, errlen, "[%s.root] is missing", kind);
        if (toml_get_string(root, "type", &type) < 0)
                return fail(err, errlen, "[%s.root] needs type = \"...\"", kind);
        if (strcmp(type, k == 0 ? "combined" : "cache") != 0)
                return leaf(kind_tab, kind, "root", ret, err, errlen);
        if (toml_get_string(root, "near", &near) < 0 || toml_get_string(root, "far", &far) < 0)
                return fail(err, errlen, "[%s.root] type %s needs near = \"NAME\" and far = \"NAME\"", kind, type);
        r = leaf(kind_tab, kind, near, &n, err, errlen);
        if (r >= 0)
                r = leaf(kind_tab, kind, far, &f, err, errlen);
        if (r < 0)
                return r;
        if (strcmp(n.type, "local") != 0 || strcmp(f.type, "grpc") != 0)
                return fail(err, errlen, "[%s.root]: castore's cache is a local store (near) in front of grpc (far)",
                            kind);
        *ret = (struct resolved){ .type = "grpc", .where = f.where, .cache = n.where };
        return 0;
}

static bool same(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int remote_addrs_from_composition(const struct toml_table *doc, struct remote_addrs *ret, char *err, size_t errlen) {
        struct resolved s[3];
        int r;

        for (int k = 0; k < 3; k++) {
                r = resolve_root(doc, k, &s[k], err, errlen);
                if (r < 0)
                        return r;
        }
        const char *cache = NULL;
        for (int k = 0; k < 3; k++) {
                if (cache && s[k].cache && strcmp(cache, s[k].cache) != 0)
                        return fail(err, errlen, "the services must share one cache");
                if (s[k].cache)
                        cache = s[k].cache;
        }
        *ret = (struct remote_addrs){ .cache = cache, .timeout_ms = ret->timeout_ms };
        if (strcmp(s[0].type, "grpc") == 0 && strcmp(s[1].type, "grpc") == 0 && strcmp(s[2].type, "grpc") == 0) {
                ret->blobs = s[0].where;
                ret->dirs = s[1].where;
                ret->pathinfo = s[2].where;
                return 0;
        }
        bool pg1 = strcmp(s[1].type, "postgresql") == 0, pg2 = strcmp(s[2].type, "postgresql") == 0;
        if (pg1 || pg2) {
                if (!pg1 || !pg2 || cache || !(strcmp(s[0].type, "local") == 0 || strcmp(s[0].type, "memory") == 0))
                        return fail(err, errlen, "postgresql directory and path info services go together, with "
                                                 "a local or memory blob service");
                ret->store = ret->blobs = s[0].where ? s[0].where : "memory://";
                ret->dirs = s[1].where;
                ret->pathinfo = s[2].where;
                return 0;
        }
        if (strcmp(s[0].type, s[1].type) != 0 || strcmp(s[0].type, s[2].type) != 0 || !same(s[0].where, s[1].where) ||
            !same(s[0].where, s[2].where))
                return fail(err, errlen, "the services must be all grpc, all memory, or all one local store");
        ret->store = strcmp(s[0].type, "memory") == 0 ? "memory://" : s[0].where;
        return 0;
}
