/* Importing as a Nix store path: for a local tree, the castore import and
 * the NAR pass over the same source, the same-tree proof between them,
 * then the PathInfo and the named root; for a NAR stream, ingestion then
 * the PathInfo (see nix_import.h). */
#include "store/nix_import.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/json_parse.h"
#include "util/log.h"

/* The NAR pass: the NAR of the source and the castore root node that the
 * same bytes give. */
struct nar_pass {
        pthread_t thread;
        const char *path;
        bool skip_special;
        int r;
        uint64_t nar_size;
        uint8_t nar_sha256[NIX_SHA256_LEN];
        struct cas_node root;
        void *mem;
};

static void nar_pass_run(struct nar_pass *np) {
        np->r = nar_hash_local(np->path, np->skip_special, &np->nar_size, np->nar_sha256, &np->root, &np->mem);
}

static void *nar_pass_thread(void *p) {
        nar_pass_run(p);
        return NULL;
}

/* Runs the import, and with nix the NAR pass beside it (or, for a test
 * hook, after it).  Both passes always end before this returns. */
static int run_passes(struct cas_store *store, const char *path, const struct nix_import_opts *opts, bool nix,
                      struct nar_pass *np, struct nix_import_result *ret) {
        bool beside = nix && !opts->between_passes;
        int r;

        if (beside) {
                r = -pthread_create(&np->thread, NULL, nar_pass_thread, np);
                if (r < 0)
                        return log_error_errno(r, "Cannot start the NAR hashing thread: %m");
        }
        r = cas_import_path(store, path, &opts->import, &ret->root, &ret->mem, &ret->stats);
        if (beside)
                pthread_join(np->thread, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to import %s: %m", path);
        if (nix && !beside) {
                opts->between_passes(opts->between_passes_userdata);
                nar_pass_run(np);
        }
        return 0;
}

/* Decides what the NAR pass allows: 1 register the store path, 0 the
 * named root only (-ELOOP: too deep for a NAR), or an error that refuses
 * the whole import. */
static int check_nar_pass(const struct nar_pass *np, const struct cas_node *root, const char *path,
                          const char *name) {
        if (np->r == -ELOOP) {
                log_error("%s: nested deeper than a NAR may be (%d levels): registered as the root \"%s\", not as "
                          "a Nix store path", path, NAR_DEPTH_MAX, name);
                return 0;
        }
        if (np->r == -ESTALE || np->r == -ENOENT) /* the import found it */
                return log_error_errno(-ESTALE, "%s changed during the import: not registered", path);
        if (np->r < 0)
                return log_error_errno(np->r, "%s: cannot compute its NAR hash, not registered: %m", path);
        if (!cas_node_same_content(&np->root, root))
                return log_error_errno(-ESTALE, "%s changed during the import: not registered", path);
        return 1;
}

/* Every reference must be a registered path: -ENOENT (logged) if not. */
static int check_references(struct nix_pathinfo_service *pis, const struct nix_import_opts *opts) {
        for (size_t i = 0; i < opts->n_references; i++) {
                _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
                char abs[NIX_PATH_MAX + 1];
                int r;

                nix_store_path_absolute(&opts->references[i], abs);
                r = nix_pathinfo_get_path(pis, &opts->references[i], &pi);
                if (r == -ENOENT)
                        return log_error_errno(r, "The reference %s is not registered in the store (castore copy "
                                                  "--from or castore import it first)", abs);
                if (r < 0)
                        return log_error_errno(r, "Cannot look up the reference %s: %m", abs);
        }
        return 0;
}

/* A root called name with other content is replaced only when asked:
 * -EEXIST (logged) otherwise.  0 when there is none or it is the same. */
static int check_existing_root(struct cas_store *store, const char *name, const struct cas_node *root) {
        _cleanup_free_ void *mem = NULL;
        struct cas_node old;
        int r;

        r = cas_root_get(store->roots, name, strlen(name), &old, &mem);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_error_errno(r, "Failed to look up root %s: %m", name);
        if (cas_node_same_content(&old, root))
                return 0;
        if (old.kind == CAS_NODE_SYMLINK)
                return log_error_errno(-EEXIST, "A root named \"%s\" already exists with other content "
                                                "(symlink:%s): not replaced", name, old.target);
        return log_error_errno(-EEXIST, "A root named \"%s\" already exists with other content (%s): not replaced",
                               name, CAS_DIGEST_B3(&old.digest));
}

int nix_import_tree(struct cas_store *store, struct nix_pathinfo_service *pis, const char *path, const char *name,
                    const struct nix_import_opts *opts, struct nix_import_result *ret) {
        static const struct nix_import_opts defaults = {};
        _cleanup_(cas_store_unlockp) struct cas_store_lock *lock = NULL;
        struct nix_import_result res = {};
        struct nar_pass np;
        bool nix = pis != NULL;
        int r, nar_ok = 0;

        if (!store || !path || !name || !ret)
                return -EINVAL;
        if (!opts)
                opts = &defaults;
        if (!cas_root_name_valid(name, strlen(name)))
                return log_error_errno(-EINVAL, "Invalid root name for %s: a root name is not empty, \".\" or "
                                                "\"..\", and has no \"/\" and no control characters", path);
        if (nix && nix_name_check(name, strlen(name)) < 0) {
                log_warning("%s: not a valid Nix store path name; registered as a named root only", name);
                nix = false;
        }
        if (!nix && (opts->n_references || opts->self_reference))
                return log_error_errno(-EINVAL, "%s: references need a Nix store path to carry them", path);
        if (nix) {
                r = check_references(pis, opts);
                if (r < 0)
                        return r;
        }
        np = (struct nar_pass){ .path = path, .skip_special = opts->import.skip_special };
        /* shared from the first blob to the registration: the garbage
         * collector cannot take the tree before it has a root */
        r = cas_store_lock(store, false, true, &lock);
        if (r < 0)
                return log_error_errno(r, "Cannot lock the store: %m");

        r = run_passes(store, path, opts, nix, &np, &res);
        if (r >= 0 && nix)
                r = nar_ok = check_nar_pass(&np, &res.root, path, name);
        if (r >= 0 && !opts->replace)
                r = check_existing_root(store, name, &res.root);
        res.root.name = name;
        res.root.name_len = strlen(name);
        /* the PathInfo first: a named root is the weaker claim, put last */
        if (r >= 0 && nar_ok > 0) {
                r = nix_register_nar_refs(pis, &res.root, name, np.nar_size, np.nar_sha256, opts->references,
                                          opts->n_references, opts->self_reference, &res.store_path);
                res.has_store_path = true;
                res.nar_size = np.nar_size;
                memcpy(res.nar_sha256, np.nar_sha256, NIX_SHA256_LEN);
        }
        if (r >= 0) {
                r = cas_root_put(store->roots, &res.root);
                if (r < 0)
                        log_error_errno(r, "Failed to register root %s: %m", name);
        }
        free(np.mem);
        if (r < 0) {
                free(res.mem);
                return r;
        }
        *ret = res;
        return nix && nar_ok == 0 ? -ELOOP : 0;
}

int nix_import_nar(struct cas_store *store, struct nix_pathinfo_service *pis, const char *name, nar_read_fn read,
                   void *userdata, const char *source, unsigned flags, struct nix_store_path *ret_path) {
        _cleanup_(cas_store_unlockp) struct cas_store_lock *lock = NULL;
        struct nar_ingest_result res;
        int r;

        if (!store || !pis || !name || !read || !source || !ret_path)
                return -EINVAL;
        if (nix_name_check(name, strlen(name)) < 0)
                return log_error_errno(-EINVAL, "Invalid store path name \"%s\" (1-211 characters of "
                                                "A-Za-z0-9+-._?=, not . or ..)", name);
        /* shared until the PathInfo names the tree (see cas_store_lock) */
        r = cas_store_lock(store, false, true, &lock);
        if (r < 0)
                return log_error_errno(r, "Cannot lock the store: %m");
        r = nar_ingest(store->blobs, store->dirs, read, userdata, flags, &res);
        if (r == -EBADMSG && res.error)
                return log_error_errno(r, "%s: invalid NAR at byte %llu: %s", source,
                                       (unsigned long long) res.error_offset, res.error);
        if (r < 0)
                return log_error_errno(r, "%s: failed to import the NAR: %m", source);
        r = nix_register_nar(pis, &res.root, name, res.nar_size, res.nar_sha256, ret_path);
        free(res.mem);
        return r;
}

/* Appends the "path" of every entry of the array a. */
static int references_of_array(const struct json_value *a, struct nix_store_path **refs, size_t *n,
                               const char **why) {
        struct nix_store_path *t;

        t = reallocarray(*refs, *n + a->n + 1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        *refs = t;
        for (size_t i = 0; i < a->n; i++) {
                const struct json_value *p = json_object_get(&a->items[i], "path");
                const struct json_value *valid = json_object_get(&a->items[i], "valid");
                const char *sub;

                if (!p || p->type != JSON_STRING || strlen(p->str) != p->len) {
                        *why = "an entry without a \"path\" string";
                        return -EBADMSG;
                }
                if (valid && valid->type == JSON_FALSE) {
                        *why = "an entry marked \"valid\": false (not in the Nix store that listed it)";
                        return -EBADMSG;
                }
                if (nix_store_path_parse(p->str, &t[*n], &sub) < 0 || *sub) {
                        *why = "a \"path\" that is not a store path";
                        return -EBADMSG;
                }
                (*n)++;
        }
        return 0;
}

int nix_references_from_json(const char *buf, size_t len, struct nix_store_path **ret, size_t *ret_n,
                             const char **ret_why) {
        _cleanup_(json_value_freep) struct json_value *doc = NULL;
        _cleanup_free_ struct nix_store_path *refs = NULL;
        const char *why = "not JSON";
        size_t n = 0;
        int r;

        r = json_parse(buf, len, &doc, &why, NULL);
        if (r == -EBADMSG && ret_why)
                *ret_why = why;
        if (r < 0)
                return r;
        if (doc->type == JSON_ARRAY)
                r = references_of_array(doc, &refs, &n, &why);
        else if (doc->type == JSON_OBJECT) {
                for (size_t i = 0; i < doc->n && r >= 0; i++) {
                        if (doc->items[i].type != JSON_ARRAY) {
                                why = "an object member that is not an array of paths";
                                r = -EBADMSG;
                        } else
                                r = references_of_array(&doc->items[i], &refs, &n, &why);
                }
        } else {
                why = "neither an array nor an object";
                r = -EBADMSG;
        }
        if (r == -EBADMSG && ret_why)
                *ret_why = why;
        if (r < 0)
                return r;
        *ret = TAKE_PTR(refs);
        *ret_n = n;
        return 0;
}
