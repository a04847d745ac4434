/* Unit tests for nix_import_tree over a memory:// store: the store path
 * nix-store --add gives, roots of each kind, names that are not store path
 * names, and trees that change between the import and the NAR pass (made
 * deterministic by the between-passes hook): refused, nothing registered. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/nar.h"
#include "store/nix_import.h"
#include "test.h"

static char base[] = "/tmp/castore-test-nix_import.XXXXXX";

/* A path below base; four live at a time (a test's argument, a hook's). */
static const char *tpath(const char *rel) {
        static char p[4][512];
        static unsigned next;
        char *s = p[next++ % 4];

        snprintf(s, sizeof(p[0]), "%s/%s", base, rel);
        return s;
}

static void write_file(const char *rel, const char *data, mode_t mode) {
        int fd = open(tpath(rel), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

        CHECK(fd >= 0);
        CHECK(write(fd, data, strlen(data)) == (ssize_t) strlen(data));
        CHECK(fchmod(fd, mode) == 0);
        CHECK(close(fd) == 0);
}

/* A store with its PathInfo service. */
struct env {
        struct cas_store *store;
        struct nix_pathinfo_service *pis;
};

static struct env env_new(void) {
        struct env e;

        CHECK_OK(cas_store_open("memory://", 0, &e.store));
        CHECK_OK(nix_pathinfo_open_store(e.store, &e.pis));
        return e;
}

static void env_free(struct env *e) {
        nix_pathinfo_service_free(e->pis);
        cas_store_free(e->store);
}

static int count_cb(void *userdata, const struct nix_pathinfo *pi) {
        (*(size_t *) userdata)++;
        return 0;
}

static size_t n_pathinfos(struct env *e) {
        size_t n = 0;
        CHECK_OK(nix_pathinfo_list(e->pis, count_cb, &n));
        return n;
}

static bool has_root(struct env *e, const char *name) {
        struct cas_node n;
        void *mem;
        int r = cas_root_get(e->store->roots, name, strlen(name), &n, &mem);

        if (r == -ENOENT)
                return false;
        CHECK_OK(r);
        free(mem);
        return true;
}

static const char *store_path_str(const struct nix_import_result *res) {
        static char buf[NIX_PATH_MAX + 1];

        CHECK(res->has_store_path);
        nix_store_path_absolute(&res->store_path, buf);
        return buf;
}

/* The known answer of test-pathinfo's registration, from a tree on disk:
 * nix-store --add of a directory "src" holding f = "hi\n".  Both ways of
 * running the passes (beside each other, one after the other) agree, and
 * the NAR hashed from the source is the NAR rendered from the store. */
static void hook_nothing(void *userdata) {
        (*(int *) userdata)++;
}

static void test_known_answer(void) {
        struct env e = env_new();
        int calls = 0;
        struct nix_import_opts serial = { .between_passes = hook_nothing, .between_passes_userdata = &calls };
        struct nix_import_result res, res2;
        struct nix_pathinfo *pi;
        char ca[NIX_CA_STR_MAX];
        uint8_t sha[32];
        uint64_t size;

        CHECK(mkdir(tpath("src"), 0755) == 0);
        write_file("src/f", "hi\n", 0644);
        CHECK_OK(nix_import_tree(e.store, e.pis, tpath("src"), "src", NULL, &res));
        CHECK_STREQ(store_path_str(&res), "/nix/store/qp2422fm4lgfh6979k71gsw0n9nf512m-src");
        CHECK_EQ(res.nar_size, 288);
        CHECK_EQ(res.stats.files, 1);
        CHECK_STREQ(res.root.name, "src");
        CHECK(has_root(&e, "src"));
        CHECK_OK(nix_pathinfo_get_path(e.pis, &res.store_path, &pi));
        CHECK_EQ(pi->nar_size, 288);
        CHECK(memcmp(pi->nar_sha256, res.nar_sha256, 32) == 0);
        CHECK(pi->has_ca);
        CHECK_OK(nix_ca_to_string(pi->ca_type, pi->ca_digest, ca));
        CHECK_STREQ(ca, "fixed:r:sha256:1jpg5v8rcf4d08rlpq51vnd1w800l64h34r0bw4vkb6z3qlk089k");
        CHECK(cas_digest_equal(&pi->node.digest, &res.root.digest));
        nix_pathinfo_free(pi);
        CHECK_OK(nar_render(e.store->blobs, e.store->dirs, &res.root, 0, NULL, NULL, &size, sha));
        CHECK_EQ(size, res.nar_size);
        CHECK(memcmp(sha, res.nar_sha256, 32) == 0);

        /* again, the passes one after the other: the same, registered once */
        CHECK_OK(nix_import_tree(e.store, e.pis, tpath("src"), "src", &serial, &res2));
        CHECK_EQ(calls, 1);
        CHECK_STREQ(store_path_str(&res2), "/nix/store/qp2422fm4lgfh6979k71gsw0n9nf512m-src");
        CHECK_EQ(n_pathinfos(&e), 1);
        free(res.mem);
        free(res2.mem);
        env_free(&e);
}

/* File and symlink roots; no PathInfo service; a root name that is no
 * store path name; names refused outright. */
static void test_roots_and_names(void) {
        struct env e = env_new();
        struct nix_import_result res;
        write_file("hello", "Hello World!", 0755);
        CHECK_OK(nix_import_tree(e.store, e.pis, tpath("hello"), "hello", NULL, &res));
        CHECK_EQ(res.root.kind, CAS_NODE_FILE);
        CHECK(res.root.executable);
        CHECK(res.has_store_path);
        CHECK_EQ(res.nar_size, 160); /* 128 + "executable" "" */
        free(res.mem);

        CHECK(symlink("/nix/store/somewhereelse", tpath("link")) == 0);
        CHECK_OK(nix_import_tree(e.store, e.pis, tpath("link"), "link", NULL, &res));
        CHECK_EQ(res.root.kind, CAS_NODE_SYMLINK);
        CHECK_STREQ(res.root.target, "/nix/store/somewhereelse");
        CHECK_EQ(res.nar_size, 136);
        free(res.mem);
        CHECK_EQ(n_pathinfos(&e), 2);

        /* no PathInfo service: the named root only */
        CHECK_OK(nix_import_tree(e.store, NULL, tpath("hello"), "plain", NULL, &res));
        CHECK(!res.has_store_path);
        CHECK(has_root(&e, "plain"));
        free(res.mem);

        /* a valid root name that Nix refuses: the named root only */
        CHECK_OK(nix_import_tree(e.store, e.pis, tpath("hello"), "with space", NULL, &res));
        CHECK(!res.has_store_path);
        CHECK(has_root(&e, "with space"));
        free(res.mem);
        CHECK_EQ(n_pathinfos(&e), 2);

        /* invalid root names, a missing source: nothing at all */
        CHECK_EQ(nix_import_tree(e.store, e.pis, tpath("hello"), "a/b", NULL, &res), -EINVAL);
        CHECK_EQ(nix_import_tree(e.store, e.pis, tpath("hello"), "..", NULL, &res), -EINVAL);
        CHECK_EQ(nix_import_tree(e.store, e.pis, tpath("hello"), "", NULL, &res), -EINVAL);
        CHECK_EQ(nix_import_tree(e.store, e.pis, tpath("hello"), "new\nline", NULL, &res), -EINVAL);
        CHECK_EQ(nix_import_tree(e.store, e.pis, tpath("hello"), "esc\x1b[0m", NULL, &res), -EINVAL);
        CHECK_EQ(nix_import_tree(e.store, e.pis, tpath("missing"), "missing", NULL, &res), -ENOENT);
        CHECK(!has_root(&e, "missing"));
        CHECK_EQ(n_pathinfos(&e), 2);
        env_free(&e);
}

/* A root of the same name: kept and reused for the same content, refused
 * for other content (nothing registered), replaced when asked. */
static void test_existing_root(void) {
        struct env e = env_new();
        struct nix_import_opts opts = {};
        struct nix_import_result res, first;
        struct cas_node node;
        void *mem;

        write_file("same", "one", 0644);
        CHECK_OK(nix_import_tree(e.store, e.pis, tpath("same"), "same", NULL, &first));
        CHECK_OK(nix_import_tree(e.store, e.pis, tpath("same"), "same", NULL, &res));
        CHECK(cas_node_same_content(&res.root, &first.root));
        free(res.mem);
        CHECK_EQ(n_pathinfos(&e), 1);

        write_file("same", "two", 0644);
        CHECK_EQ(nix_import_tree(e.store, e.pis, tpath("same"), "same", NULL, &res), -EEXIST);
        CHECK_EQ(n_pathinfos(&e), 1);
        CHECK_OK(cas_root_get(e.store->roots, "same", 4, &node, &mem));
        CHECK(cas_node_same_content(&node, &first.root));
        free(mem);
        /* the executable bit alone is other content too */
        write_file("same", "one", 0755);
        CHECK_EQ(nix_import_tree(e.store, e.pis, tpath("same"), "same", NULL, &res), -EEXIST);

        opts.replace = true;
        CHECK_OK(nix_import_tree(e.store, e.pis, tpath("same"), "same", &opts, &res));
        CHECK_OK(cas_root_get(e.store->roots, "same", 4, &node, &mem));
        CHECK(cas_node_same_content(&node, &res.root));
        CHECK(!cas_node_same_content(&node, &first.root));
        free(mem);
        free(res.mem);
        free(first.mem);
        CHECK_EQ(n_pathinfos(&e), 2); /* the old store path stays */
        env_free(&e);
}

/* Special files: refused by both passes, or left out by both. */
static void test_special_files(void) {
        struct env e = env_new();
        struct nix_import_result res;
        struct nix_import_opts skip = { .import.skip_special = true };

        CHECK(mkdir(tpath("sp"), 0755) == 0);
        write_file("sp/f", "x", 0644);
        CHECK(mkfifo(tpath("sp/fifo"), 0644) == 0);
        CHECK_EQ(nix_import_tree(e.store, e.pis, tpath("sp"), "sp", NULL, &res), -EINVAL);
        CHECK(!has_root(&e, "sp"));
        CHECK_EQ(n_pathinfos(&e), 0);
        CHECK_OK(nix_import_tree(e.store, e.pis, tpath("sp"), "sp", &skip, &res));
        CHECK(res.has_store_path);
        CHECK_EQ(res.root.size, 1);
        free(res.mem);
        env_free(&e);
}

/* ---- the tree changes between the two passes ---- */

static void change_content(void *userdata) {
        write_file("ch/f", "hI\n", 0644); /* same size: only the content differs */
}
static void change_mode(void *userdata) {
        CHECK(chmod(tpath("ch/f"), 0755) == 0);
}
static void change_add(void *userdata) {
        write_file("ch/new", "", 0644);
}
static void change_remove(void *userdata) {
        CHECK(unlink(tpath("ch/f")) == 0);
}
static void change_rename(void *userdata) {
        CHECK(rename(tpath("ch/f"), tpath("ch/g")) == 0);
}
static void change_deep(void *userdata) {
        write_file("ch/sub/deeper", "b", 0644);
}
static void change_kind(void *userdata) {
        CHECK(unlink(tpath("ch/f")) == 0);
        CHECK(symlink("hi", tpath("ch/f")) == 0);
}
static void change_file_root(void *userdata) {
        write_file("chf", "after", 0644);
}
static void change_link_root(void *userdata) {
        CHECK(unlink(tpath("chl")) == 0);
        CHECK(symlink("after", tpath("chl")) == 0);
}

static void make_changing_tree(void) {
        char cmd[200];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s/ch' '%s/chf' '%s/chl'", base, base, base);
        CHECK(system(cmd) == 0);
        CHECK(mkdir(tpath("ch"), 0755) == 0);
        CHECK(mkdir(tpath("ch/sub"), 0755) == 0);
        write_file("ch/f", "hi\n", 0644);
        write_file("ch/sub/deeper", "a", 0644);
        write_file("chf", "before", 0644);
        CHECK(symlink("before", tpath("chl")) == 0);
}

static void test_changed_between_passes(void) {
        static const struct {
                const char *rel;
                void (*change)(void *userdata);
        } cases[] = {
                { "ch", change_content }, { "ch", change_mode },   { "ch", change_add },
                { "ch", change_remove },  { "ch", change_rename }, { "ch", change_deep },
                { "ch", change_kind },    { "chf", change_file_root }, { "chl", change_link_root },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct env e = env_new();
                struct nix_import_opts opts = { .between_passes = cases[i].change };
                struct nix_import_result res;

                make_changing_tree();
                /* the log says what happened, naming the path (not "Stale file handle") */
                char logpath[300], msg[4096] = "";
                snprintf(logpath, sizeof(logpath), "%s/log.txt", base);
                int saved = dup(STDERR_FILENO), lfd = open(logpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                CHECK(saved >= 0 && lfd >= 0);
                CHECK(dup2(lfd, STDERR_FILENO) >= 0);
                int ir = nix_import_tree(e.store, e.pis, tpath(cases[i].rel), "changing", &opts, &res);
                CHECK(dup2(saved, STDERR_FILENO) >= 0);
                close(saved);
                CHECK(pread(lfd, msg, sizeof(msg) - 1, 0) >= 0);
                close(lfd);
                CHECK_EQ(ir, -ESTALE);
                CHECK(strstr(msg, "changed") && strstr(msg, tpath(cases[i].rel)));
                CHECK(!strstr(msg, "Stale file handle"));
                /* refused: no named root, no PathInfo */
                CHECK(!has_root(&e, "changing"));
                CHECK_EQ(n_pathinfos(&e), 0);
                /* the tree as it is now imports */
                CHECK_OK(nix_import_tree(e.store, e.pis, tpath(cases[i].rel), "changing", NULL, &res));
                CHECK(res.has_store_path);
                CHECK(has_root(&e, "changing"));
                free(res.mem);
                env_free(&e);
        }
}

/* A tree one level deeper than a NAR may be: the named root only, and
 * -ELOOP.  Needs a directory fd per level in each pass. */
static void test_too_deep(void) {
        struct env e = env_new();
        struct nix_import_opts serial = { .between_passes = hook_nothing };
        struct nix_import_result res;
        struct rlimit rl;
        int calls = 0, fd;

        CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < NAR_DEPTH_MAX + 256) {
                SKIP_PART("the hard limit of open files (%llu) is below the depth tested",
                          (unsigned long long) rl.rlim_max);
                env_free(&e);
                return;
        }
        rl.rlim_cur = rl.rlim_max;
        CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
        CHECK(mkdir(tpath("deep"), 0755) == 0);
        fd = open(tpath("deep"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        CHECK(fd >= 0);
        for (int i = 0; i < NAR_DEPTH_MAX; i++) { /* the root and NAR_DEPTH_MAX levels below */
                int sub;

                CHECK(mkdirat(fd, "d", 0755) == 0);
                sub = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                CHECK(sub >= 0);
                close(fd);
                fd = sub;
        }
        close(fd);
        serial.between_passes_userdata = &calls;
        CHECK_EQ(nix_import_tree(e.store, e.pis, tpath("deep"), "deep", &serial, &res), -ELOOP);
        CHECK(!res.has_store_path);
        CHECK_EQ(res.root.kind, CAS_NODE_DIRECTORY);
        CHECK(has_root(&e, "deep"));
        CHECK_EQ(n_pathinfos(&e), 0);
        free(res.mem);
        env_free(&e);
}

/* References: each must be registered (else nothing is imported); the
 * path is Nix's for a CA path with those references; the PathInfo lists
 * them sorted, each once, itself too with self_reference. */
static void test_references(void) {
        struct env e = env_new();
        struct nix_import_result src, res;
        struct nix_store_path refs[3], missing;
        struct nix_import_opts o = {};
        struct nix_pathinfo *pi;
        const char *sub;

        CHECK(mkdir(tpath("r"), 0755) == 0);
        write_file("r/f", "hi\n", 0644);
        CHECK_OK(nix_import_tree(e.store, e.pis, tpath("r"), "src", NULL, &src));
        CHECK_OK(nix_store_path_parse("/nix/store/00000000000000000000000000000000-gone", &missing, &sub));

        o.references = &missing;
        o.n_references = 1;
        CHECK_EQ(nix_import_tree(e.store, e.pis, tpath("r"), "withref", &o, &res), -ENOENT);
        CHECK(!has_root(&e, "withref"));
        CHECK_EQ(n_pathinfos(&e), 1);

        refs[0] = refs[1] = src.store_path;
        o.references = refs;
        o.n_references = 2;
        CHECK_OK(nix_import_tree(e.store, e.pis, tpath("r"), "withref", &o, &res));
        CHECK_OK(nix_pathinfo_get_path(e.pis, &res.store_path, &pi));
        CHECK_EQ(pi->n_references, 1);
        CHECK(nix_store_path_equal(&pi->references[0], &src.store_path));
        CHECK(!nix_store_path_equal(&res.store_path, &src.store_path));
        nix_pathinfo_free(pi);
        free(res.mem);

        o.self_reference = true;
        CHECK_OK(nix_import_tree(e.store, e.pis, tpath("r"), "self", &o, &res));
        CHECK_OK(nix_pathinfo_get_path(e.pis, &res.store_path, &pi));
        CHECK_EQ(pi->n_references, 2);
        CHECK(nix_store_path_compare(&pi->references[0], &pi->references[1]) < 0);
        CHECK(nix_store_path_equal(&pi->references[0], &res.store_path) ||
              nix_store_path_equal(&pi->references[1], &res.store_path));
        nix_pathinfo_free(pi);
        free(res.mem);

        /* no PathInfo service: references cannot be carried */
        CHECK_EQ(nix_import_tree(e.store, NULL, tpath("r"), "plain", &o, &res), -EINVAL);
        free(src.mem);
        env_free(&e);
}

static void refs_json_ok(const char *json, size_t want_n, const char *first) {
        struct nix_store_path *refs = NULL;
        char buf[NIX_PATH_MAX + 1];
        size_t n = 99;

        CHECK_OK(nix_references_from_json(json, strlen(json), &refs, &n, NULL));
        CHECK_EQ(n, want_n);
        if (first) {
                nix_store_path_absolute(&refs[0], buf);
                CHECK_STREQ(buf, first);
        }
        free(refs);
}

static void refs_json_bad(const char *json) {
        struct nix_store_path *refs = NULL;
        const char *why = NULL;
        size_t n = 0;

        CHECK_EQ(nix_references_from_json(json, strlen(json), &refs, &n, &why), -EBADMSG);
        CHECK(why && refs == NULL);
}

#define P1 "/nix/store/c50r857dkp7ww72qhcxfbds160hlk81v-tree"
#define P2 "/nix/store/lpb2pnkqa8j2z892bhqdiaz52iyqfms3-t2"

static void test_references_json(void) {
        /* nix path-info --json */
        refs_json_ok("[{\"path\":\"" P1 "\",\"narHash\":\"sha256:x\",\"narSize\":1,\"references\":[],"
                     "\"valid\":true},{\"path\":\"" P2 "\",\"references\":[\"" P1 "\"]}]", 2, P1);
        /* exportReferencesGraph, as .attrs.json has it */
        refs_json_ok("{\"closure\":[{\"path\":\"" P2 "\",\"references\":[]}],\"more\":[]}", 1, P2);
        refs_json_ok("[]", 0, NULL);
        refs_json_bad("");
        refs_json_bad("\"" P1 "\"");
        refs_json_bad("[\"" P1 "\"]");
        refs_json_bad("[{\"path\":\"/nix/store/short-x\"}]");
        refs_json_bad("[{\"path\":\"" P1 "/sub\"}]");
        refs_json_bad("[{\"path\":\"" P1 "\",\"valid\":false}]");
        refs_json_bad("{\"closure\":{}}");
        refs_json_bad("[{\"path\":1}]");
}

int main(void) {
        CHECK(mkdtemp(base));
        RUN(test_known_answer);
        RUN(test_roots_and_names);
        RUN(test_existing_root);
        RUN(test_special_files);
        RUN(test_changed_between_passes);
        RUN(test_too_deep);
        RUN(test_references);
        RUN(test_references_json);
        char cmd[200];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
        CHECK(system(cmd) == 0);
        return *test_exit_code();
}
