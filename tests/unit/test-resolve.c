/* Unit tests for store/resolve.h over a memory:// store built by hand:
 * every spelling of a name (root, store path absolute and basename,
 * digest b3: and hex, each with a sub path), their precedence and errors,
 * the store paths holding a tree, and removal under the closure rule. */
#include <stdio.h>
#include <stdlib.h>

#include "store/resolve.h"
#include "test.h"
#include "test-tree.h"

struct env {
        struct cas_store *store;
        struct nix_pathinfo_service *pis;
        struct cas_node file, sub, top, link;
};

static struct nix_store_path sp(const char *base) {
        struct nix_store_path p;

        CHECK_OK(nix_store_path_from_basename(base, strlen(base), &p));
        return p;
}

#define BASE_TOP "00bgd045z0d4icpbc2yyz4gx48ak44la-top"
#define BASE_TOP2 "lfngsssysp6h1v4ccqg23c52s9sjl779-top2"
#define BASE_SUB "capi7w5i7rp2pkvhkn6hw35a8ik7q04k-sub"
#define BASE_USER "1bgd045z0d4icpbc2yyz4gx48ak44la0-user"
#define BASE_SELF "2bgd045z0d4icpbc2yyz4gx48ak44la0-self"
#define BASE_GONE "3bgd045z0d4icpbc2yyz4gx48ak44la0-gone"

/* Registers node as the store path base, referring to refs. */
static void register_path(struct env *e, const char *base, const struct cas_node *node, const char *const *refs) {
        struct nix_store_path p = sp(base);
        struct nix_pathinfo *pi;
        uint8_t sha[NIX_SHA256_LEN] = { 1 };

        CHECK_OK(nix_pathinfo_new(&p, node, 1234, sha, &pi));
        for (size_t i = 0; refs && refs[i]; i++) {
                struct nix_store_path r = sp(refs[i]);
                CHECK_OK(nix_pathinfo_add_reference(pi, &r));
        }
        CHECK_OK(nix_pathinfo_put(e->pis, pi));
        nix_pathinfo_free(pi);
}

/* top = { a: "hello", link -> a, sub: { f: "hello" } }, a root "top",
 * the store paths BASE_TOP and BASE_TOP2 (both top) and BASE_SUB. */
static struct env env_new(void) {
        struct env e = {};
        struct cas_node nodes[3];

        CHECK_OK(cas_store_open("memory://", 0, &e.store));
        CHECK_OK(nix_pathinfo_open_store(e.store, &e.pis));
        e.file = test_file_node(e.store, "f", "hello", strlen("hello"));
        e.sub = test_dir_node(e.store, "sub", &e.file, 1);
        nodes[0] = test_file_node(e.store, "a", "hello", strlen("hello"));
        nodes[1] = (struct cas_node){ .kind = CAS_NODE_SYMLINK, .name = "link", .name_len = 4, .target = "a",
                                      .target_len = 1 };
        nodes[2] = e.sub;
        e.link = nodes[1];
        e.top = test_dir_node(e.store, "top", nodes, 3);
        CHECK_OK(cas_root_put(e.store->roots, &e.top));
        register_path(&e, BASE_TOP, &e.top, NULL);
        register_path(&e, BASE_TOP2, &e.top, NULL);
        register_path(&e, BASE_SUB, &e.sub, NULL);
        return e;
}

static void env_free(struct env *e) {
        nix_pathinfo_service_free(e->pis);
        cas_store_free(e->store);
}

/* Resolves arg and checks the node's kind and digest (not for symlinks). */
static struct nix_resolved expect(struct env *e, const char *arg, unsigned flags, enum nix_name_kind kind,
                                  const struct cas_node *want) {
        struct nix_resolved res;
        char err[256] = "";

        CHECK_OK(nix_resolve(e->store, e->pis, arg, flags, &res, err, sizeof(err)));
        CHECK_EQ(res.kind, kind);
        CHECK_EQ(res.node.kind, want->kind);
        if (want->kind != CAS_NODE_SYMLINK)
                CHECK(cas_digest_equal(&res.node.digest, &want->digest));
        CHECK(cas_node_same_content(&res.node, want));
        return res;
}

static void expect_ok(struct env *e, const char *arg, enum nix_name_kind kind, const struct cas_node *want) {
        struct nix_resolved res = expect(e, arg, 0, kind, want);
        nix_resolved_done(&res);
}

/* Fails with r and a message containing what. */
static void expect_fail(struct env *e, const char *arg, int r, const char *what) {
        struct nix_resolved res;
        char err[256] = "";

        CHECK_EQ(nix_resolve(e->store, e->pis, arg, 0, &res, err, sizeof(err)), r);
        if (!strstr(err, what)) {
                fprintf(stderr, "%s: message \"%s\" lacks \"%s\"\n", arg, err, what);
                abort();
        }
}

static void test_spellings(void) {
        struct env e = env_new();
        char b3[CAS_DIGEST_B3_LEN + 1], hex[CAS_DIGEST_HEX_LEN + 1], arg[512];
        struct nix_resolved res;

        /* a named root */
        expect_ok(&e, "top", NIX_NAME_ROOT, &e.top);
        expect_ok(&e, "top/", NIX_NAME_ROOT, &e.top);
        expect_ok(&e, "top/sub/f", NIX_NAME_ROOT, &e.file);
        expect_ok(&e, "top/./sub//f", NIX_NAME_ROOT, &e.file);
        expect_ok(&e, "top/link", NIX_NAME_ROOT, &e.link);
        res = expect(&e, "top/sub/f", 0, NIX_NAME_ROOT, &e.file);
        CHECK_STREQ(res.node.name, "f");
        CHECK_STREQ(res.subpath, "sub/f");
        CHECK(!res.pathinfo);
        nix_resolved_done(&res);

        /* store paths, absolute and basename */
        expect_ok(&e, "/nix/store/" BASE_TOP, NIX_NAME_STORE_PATH, &e.top);
        expect_ok(&e, BASE_TOP "/sub", NIX_NAME_STORE_PATH, &e.sub);
        expect_ok(&e, "/nix/store/" BASE_TOP2 "/sub/f", NIX_NAME_STORE_PATH, &e.file);
        res = expect(&e, "/nix/store/" BASE_SUB, 0, NIX_NAME_STORE_PATH, &e.sub);
        CHECK(res.pathinfo);
        CHECK(nix_store_path_equal(&res.pathinfo->path, &res.path));
        CHECK_STREQ(res.node.name, BASE_SUB);
        nix_resolved_done(&res);

        /* digests of the directory, b3: and hex, either case */
        cas_digest_to_b3(&e.top.digest, b3);
        cas_digest_to_hex(&e.top.digest, hex);
        expect_ok(&e, b3, NIX_NAME_DIGEST, &e.top);
        expect_ok(&e, hex, NIX_NAME_DIGEST, &e.top);
        snprintf(arg, sizeof(arg), "%s/sub/f", b3);
        expect_ok(&e, arg, NIX_NAME_DIGEST, &e.file);
        snprintf(arg, sizeof(arg), "%s/sub", hex);
        expect_ok(&e, arg, NIX_NAME_DIGEST, &e.sub);
        for (char *p = hex; *p; p++)
                if (*p >= 'a' && *p <= 'f')
                        *p -= 'a' - 'A';
        expect_ok(&e, hex, NIX_NAME_DIGEST, &e.top);
        res = expect(&e, b3, 0, NIX_NAME_DIGEST, &e.top);
        CHECK_STREQ(res.node.name, b3);
        CHECK_EQ(res.node.size, e.top.size);
        nix_resolved_done(&res);

        /* no walk: the named node, the sub path handed back */
        res = expect(&e, "top/sub/nonexistent", NIX_RESOLVE_NO_WALK, NIX_NAME_ROOT, &e.top);
        CHECK_STREQ(res.subpath, "sub/nonexistent");
        nix_resolved_done(&res);
        res = expect(&e, BASE_TOP "/x", NIX_RESOLVE_NO_WALK, NIX_NAME_STORE_PATH, &e.top);
        CHECK_STREQ(res.subpath, "x");
        nix_resolved_done(&res);
        env_free(&e);
}

/* A b3: digest may contain "/": its length delimits it. */
static void test_digest_with_slash(void) {
        struct env e = env_new();
        char b3[CAS_DIGEST_B3_LEN + 1], arg[512], name[32];
        bool found = false;

        for (int i = 0; i < 1000 && !found; i++) {
                struct cas_node f, d;

                snprintf(name, sizeof(name), "x%d", i);
                f = test_file_node(e.store, name, "content", 7);
                d = test_dir_node(e.store, "d", &f, 1);
                cas_digest_to_b3(&d.digest, b3);
                if (!strchr(b3, '/'))
                        continue;
                found = true;
                expect_ok(&e, b3, NIX_NAME_DIGEST, &d);
                snprintf(arg, sizeof(arg), "%s/%s", b3, name);
                expect_ok(&e, arg, NIX_NAME_DIGEST, &f);
        }
        CHECK(found);
        env_free(&e);
}

static void test_errors(void) {
        struct env e = env_new();
        char b3[CAS_DIGEST_B3_LEN + 1], arg[512];

        expect_fail(&e, "nope", -ENOENT, "No root, store path or directory named \"nope\"");
        expect_fail(&e, "nope/x", -ENOENT, "named \"nope\"");
        expect_fail(&e, "top/nope", -ENOENT, "top/nope: No such file or directory");
        expect_fail(&e, "top/sub/f/x", -ENOTDIR, "Not a directory");
        expect_fail(&e, "top/link/x", -ENOTDIR, "Not a directory");
        expect_fail(&e, "top/../top", -EINVAL, "\"..\" is not allowed");
        expect_fail(&e, "", -EINVAL, "expected a root name");
        expect_fail(&e, "/usr/bin", -EINVAL, "expected a root name");
        expect_fail(&e, "/nix/store/" BASE_GONE, -ENOENT, "no such store path");
        expect_fail(&e, BASE_GONE "/x", -ENOENT, "no such store path");
        /* the digest of a file, of nothing stored */
        cas_digest_to_b3(&e.file.digest, b3);
        expect_fail(&e, b3, -ENOENT, "the digest of a file's content, not of a directory");
        memset(arg, 'a', CAS_DIGEST_HEX_LEN);
        arg[CAS_DIGEST_HEX_LEN] = 0;
        expect_fail(&e, arg, -ENOENT, "No root, store path or directory named aaaa");
        /* a digest spelling too long by one is a name like any other */
        snprintf(arg, sizeof(arg), "%sx", b3);
        expect_fail(&e, arg, -ENOENT, "No root, store path or directory named");
        env_free(&e);
}

/* A named root wins over a store path and a digest of the same spelling. */
static void test_precedence(void) {
        struct env e = env_new();
        char hex[CAS_DIGEST_HEX_LEN + 1];
        struct cas_node shadow = e.sub;

        cas_digest_to_hex(&e.top.digest, hex);
        shadow.name = hex;
        shadow.name_len = CAS_DIGEST_HEX_LEN;
        CHECK_OK(cas_root_put(e.store->roots, &shadow));
        expect_ok(&e, hex, NIX_NAME_ROOT, &e.sub);
        shadow.name = BASE_TOP;
        shadow.name_len = strlen(BASE_TOP);
        CHECK_OK(cas_root_put(e.store->roots, &shadow));
        expect_ok(&e, BASE_TOP, NIX_NAME_ROOT, &e.sub);
        expect_ok(&e, "/nix/store/" BASE_TOP, NIX_NAME_STORE_PATH, &e.top); /* absolute: no root */

        /* without a PathInfo service, store paths are not names */
        struct nix_resolved res;
        char err[256];
        CHECK_EQ(nix_resolve(e.store, NULL, BASE_SUB, 0, &res, err, sizeof(err)), -ENOENT);
        env_free(&e);
}

struct names {
        char v[8][NIX_BASENAME_MAX + 1];
        size_t n;
};

static int collect(void *userdata, const struct nix_pathinfo *pi) {
        struct names *ns = userdata;

        CHECK(ns->n < 8);
        nix_store_path_basename(&pi->path, ns->v[ns->n++]);
        return 0;
}

static void test_find_node(void) {
        struct env e = env_new();
        struct names ns = {};

        CHECK_EQ(nix_pathinfo_find_node(e.pis, &e.top, collect, &ns), 2);
        CHECK_STREQ(ns.v[0], BASE_TOP);
        CHECK_STREQ(ns.v[1], BASE_TOP2);
        ns.n = 0;
        CHECK_EQ(nix_pathinfo_find_node(e.pis, &e.sub, collect, &ns), 1);
        CHECK_STREQ(ns.v[0], BASE_SUB);
        CHECK_EQ(nix_pathinfo_find_node(e.pis, &e.file, collect, &ns), 0);
        env_free(&e);
}

static bool registered(struct env *e, const char *base) {
        struct nix_store_path p = sp(base);
        struct nix_pathinfo *pi;
        int r = nix_pathinfo_get_path(e->pis, &p, &pi);

        if (r >= 0)
                nix_pathinfo_free(pi);
        return r >= 0;
}

/* A PathInfo service without removal (as the grpc backend), in front of
 * a real one. */
struct no_remove {
        struct nix_pathinfo_service base;
        struct nix_pathinfo_service *real;
};
static int fwd_get(struct nix_pathinfo_service *s, const uint8_t digest[NIX_DIGEST_LEN], struct nix_pathinfo **ret) {
        return nix_pathinfo_get(((struct no_remove *) s)->real, digest, ret);
}
static int fwd_list(struct nix_pathinfo_service *s, nix_pathinfo_list_cb cb, void *userdata) {
        return nix_pathinfo_list(((struct no_remove *) s)->real, cb, userdata);
}
static const struct nix_pathinfo_ops no_remove_ops = { .name = "test", .get = fwd_get, .list = fwd_list };

static void test_remove_paths(void) {
        static const char *const refs_user[] = { BASE_TOP, BASE_SUB, BASE_USER, NULL };
        static const char *const refs_self[] = { BASE_SELF, NULL };
        struct env e = env_new();
        struct nix_store_path set[3];
        char err[512] = "";

        register_path(&e, BASE_USER, &e.top, refs_user);
        register_path(&e, BASE_SELF, &e.sub, refs_self);

        /* referenced by a path outside the set: refused, nothing removed */
        set[0] = sp(BASE_SELF);
        set[1] = sp(BASE_SUB);
        CHECK_EQ(nix_pathinfo_remove_paths(e.pis, set, 2, false, err, sizeof(err)), -EBUSY);
        CHECK(strstr(err, "/nix/store/" BASE_SUB " is referenced by /nix/store/" BASE_USER));
        CHECK(registered(&e, BASE_SELF));
        CHECK(registered(&e, BASE_SUB));

        /* a reference to itself does not hold a path */
        CHECK_OK(nix_pathinfo_remove_paths(e.pis, set, 1, false, err, sizeof(err)));
        CHECK(!registered(&e, BASE_SELF));

        /* an unknown path: nothing removed */
        set[0] = sp(BASE_USER);
        set[1] = sp(BASE_GONE);
        CHECK_EQ(nix_pathinfo_remove_paths(e.pis, set, 2, false, err, sizeof(err)), -ENOENT);
        CHECK(strstr(err, BASE_GONE ": no such store path"));
        CHECK(registered(&e, BASE_USER));

        /* the referrer and what it refers to, together */
        set[1] = sp(BASE_SUB);
        CHECK_OK(nix_pathinfo_remove_paths(e.pis, set, 2, false, err, sizeof(err)));
        CHECK(!registered(&e, BASE_USER));
        CHECK(!registered(&e, BASE_SUB));

        /* force: removed although referenced */
        register_path(&e, BASE_USER, &e.top, refs_user);
        set[0] = sp(BASE_TOP);
        CHECK_EQ(nix_pathinfo_remove_paths(e.pis, set, 1, false, err, sizeof(err)), -EBUSY);
        CHECK_OK(nix_pathinfo_remove_paths(e.pis, set, 1, true, err, sizeof(err)));
        CHECK(!registered(&e, BASE_TOP));
        CHECK(registered(&e, BASE_USER));
        /* the tree stays: still reachable by its other names */
        expect_ok(&e, "/nix/store/" BASE_TOP2 "/sub/f", NIX_NAME_STORE_PATH, &e.file);

        /* a backend without removal: said, nothing removed */
        struct no_remove nr = { .base.ops = &no_remove_ops, .real = e.pis };
        set[0] = sp(BASE_TOP2);
        CHECK_EQ(nix_pathinfo_remove_paths(&nr.base, set, 1, false, err, sizeof(err)), -EOPNOTSUPP);
        CHECK(strstr(err, "cannot remove store paths"));
        CHECK(registered(&e, BASE_TOP2));
        env_free(&e);
}

int main(void) {
        RUN(test_spellings);
        RUN(test_digest_with_slash);
        RUN(test_errors);
        RUN(test_precedence);
        RUN(test_find_node);
        RUN(test_remove_paths);
        return 0;
}
