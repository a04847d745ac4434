/* Tests for the remote layer: addresses and status codes, then a castore
 * gRPC daemon on a unix socket in this process (memory services) used
 * through the grpc backends: blobs of sizes around message and group
 * boundaries, directory closures, PathInfos, the write-back cache, and a
 * stopped server failing calls promptly. */
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "castore/cache.h"
#include "remote/rpc.h"
#include "remote/server.h"
#include "remote/services.h"
#include "store/nar.h"
#include "test.h"
#include "util/log.h"
#include "util/toml.h"

struct daemon {
        struct cas_store *store;
        struct nix_pathinfo_service *pis;
        struct remote_services svc;
        struct rpc_server *server;
        pthread_t thread;
        char url[300];
};

static void *serve(void *p) {
        struct daemon *d = p;
        CHECK_OK(rpc_server_run(d->server));
        return NULL;
}

static void daemon_start(struct daemon *d, const char *dir) {
        CHECK_OK(cas_store_open("memory://", 0, &d->store));
        CHECK_OK(nix_pathinfo_memory_new(&d->pis));
        d->svc = (struct remote_services){ .blobs = d->store->blobs, .dirs = d->store->dirs, .pathinfo = d->pis };
        snprintf(d->url, sizeof(d->url), "grpc+unix://%s/sock", dir);
        CHECK_OK(rpc_server_new(&d->server));
        CHECK_OK(remote_server_add_services(d->server, &d->svc));
        CHECK_OK(rpc_server_listen(d->server, d->url, 0));
        CHECK_OK(rpc_server_start(d->server));
        CHECK(pthread_create(&d->thread, NULL, serve, d) == 0);
}

static void daemon_stop(struct daemon *d) {
        rpc_server_stop(d->server);
        pthread_join(d->thread, NULL);
        rpc_server_free(d->server);
        nix_pathinfo_service_free(d->pis);
        cas_store_free(d->store);
}

static void test_addresses(void) {
        char *t = NULL;
        const char *why = NULL;

        CHECK_OK(rpc_target_from_url("grpc+unix:///run/castore.sock", &t, &why));
        CHECK_STREQ(t, "unix:/run/castore.sock");
        free(t);
        CHECK_OK(rpc_target_from_url("grpc+http://127.0.0.1:8000", &t, &why));
        CHECK_STREQ(t, "127.0.0.1:8000");
        free(t);
        CHECK_EQ(rpc_target_from_url("grpc+unix://host/x", &t, &why), -EINVAL);
        CHECK_EQ(rpc_target_from_url("grpc+http://nohostport", &t, &why), -EINVAL);
        CHECK_EQ(rpc_target_from_url("grpc+http://h:1/path", &t, &why), -EINVAL);
        CHECK_EQ(rpc_target_from_url("http://h:1", &t, &why), -EINVAL);
        CHECK(remote_url_is_grpc("grpc+http://h:1") && !remote_url_is_grpc("/var/lib/castore"));
        CHECK_EQ(rpc_status_to_errno(RPC_NOT_FOUND), -ENOENT);
        CHECK_EQ(rpc_status_to_errno(RPC_INVALID_ARGUMENT), -EINVAL);
        CHECK_EQ(rpc_status_to_errno(RPC_UNAVAILABLE), -ECONNREFUSED);
        CHECK_EQ(rpc_errno_to_status(-ENOENT), RPC_NOT_FOUND);
        CHECK_EQ(rpc_errno_to_status(-EBADMSG), RPC_INVALID_ARGUMENT);
        CHECK_EQ(rpc_errno_to_status(-EIO), RPC_INTERNAL);
}

/* Parses a composition; 0 and *ret, or -EINVAL with the message in err. */
static int compose(const char *text, struct remote_addrs *ret, struct toml_table **doc, char *err, size_t errlen) {
        CHECK_OK(toml_parse(text, strlen(text), doc, err, errlen));
        return remote_addrs_from_composition(*doc, ret, err, errlen);
}

static void test_composition(void) {
        static const char grpc[] = "[blobservices.root]\ntype = \"grpc\"\nurl = \"grpc+unix:///b\"\n"
                                   "[directoryservices.root]\ntype = \"grpc\"\nurl = \"grpc+http://h:1\"\n"
                                   "[pathinfoservices.root]\ntype = \"grpc\"\nurl = \"grpc+unix:///p\"\n";
        static const char cached[] = "[blobservices.root]\ntype = \"combined\"\nnear = \"n\"\nfar = \"f\"\n"
                                     "[blobservices.n]\ntype = \"local\"\npath = \"/c\"\n"
                                     "[blobservices.f]\ntype = \"grpc\"\nurl = \"grpc+unix:///s\"\n"
                                     "[directoryservices.root]\ntype = \"grpc\"\nurl = \"grpc+unix:///s\"\n"
                                     "[pathinfoservices.root]\ntype = \"grpc\"\nurl = \"grpc+unix:///s\"\n";
        static const char objstore_pg[] = "[blobservices.root]\ntype = \"objectstore\"\n"
                                          "object_store_url = \"file:///o\"\n"
                                          "[directoryservices.root]\ntype = \"postgresql\"\n"
                                          "url = \"postgresql:///d?host=/run/pg\"\n"
                                          "[pathinfoservices.root]\ntype = \"postgresql\"\n"
                                          "url = \"postgresql:///p?host=/run/pg\"\n";
        static const char memory[] = "[blobservices.root]\ntype = \"memory\"\n[directoryservices.root]\n"
                                     "type = \"memory\"\n[pathinfoservices.root]\ntype = \"memory\"\n";
        static const char *const refused[][2] = {
                { "[blobservices.root]\ntype = \"objectstore\"\n", "needs object_store_url" },
                { "[blobservices.root]\ntype = \"objectstore\"\nobject_store_url = \"file:///o\"\n"
                  "[directoryservices.root]\ntype = \"grpc\"\nurl = \"grpc+unix:///s\"\n"
                  "[pathinfoservices.root]\ntype = \"memory\"\n", "both grpc, both postgresql, or both one local" },
                { "[blobservices.root]\ntype = \"objectstore\"\nobject_store_url = \"file:///o\"\n"
                  "[blobservices.root.object_store_options]\nk = \"a&b\"\n", "without" },
                { "[blobservices.root]\ntype = \"memory\"\n[directoryservices.root]\ntype = \"objectstore\"\n",
                  "not supported" },
                { "[blobservices.x]\ntype = \"memory\"\n", "[blobservices.root] is missing" },
                { "[blobservices.root]\ntype = \"grpc\"\nurl = \"http://x\"\n", "needs url" },
                { "[blobservices.root]\ntype = \"combined\"\nnear = \"a\"\nfar = \"b\"\n", "not defined" },
                { "[blobservices.root]\ntype = \"memory\"\n[directoryservices.root]\ntype = \"grpc\"\n"
                  "url = \"grpc+unix:///s\"\n[pathinfoservices.root]\ntype = \"memory\"\n", "all grpc" },
        };
        static const char objstore[] = "[blobservices.root]\ntype = \"combined\"\nnear = \"n\"\nfar = \"f\"\n"
                                       "[blobservices.n]\ntype = \"local\"\npath = \"/c\"\n"
                                       "[blobservices.f]\ntype = \"objectstore\"\nobject_store_url = \"file:///o\"\n"
                                       "avg_chunk_size = 65536\n[blobservices.f.object_store_options]\n"
                                       "aws_region = \"eu\"\n"
                                       "[directoryservices.root]\ntype = \"local\"\npath = \"/s\"\n"
                                       "[pathinfoservices.root]\ntype = \"local\"\npath = \"/s\"\n";
        struct toml_table *doc = NULL;
        struct remote_addrs a = {};
        char err[256];

        CHECK_OK(compose(objstore, &a, &doc, err, sizeof(err)));
        CHECK_STREQ(a.blobs, "objectstore+file:///o?avg_chunk_size=65536&aws_region=eu");
        CHECK_STREQ(a.dirs, "/s");
        CHECK_STREQ(a.pathinfo, "/s");
        CHECK_STREQ(a.cache, "/c");
        CHECK(!a.store);
        toml_free(doc);
        CHECK_OK(compose(objstore_pg, &a, &doc, err, sizeof(err)));
        CHECK_STREQ(a.blobs, "objectstore+file:///o");
        CHECK_STREQ(a.dirs, "postgresql:///d?host=/run/pg");
        CHECK_STREQ(a.pathinfo, "postgresql:///p?host=/run/pg");
        CHECK_STREQ(a.store, "memory://"); /* the named roots */
        CHECK(!a.cache);
        toml_free(doc);
        CHECK_OK(compose(grpc, &a, &doc, err, sizeof(err)));
        CHECK_STREQ(a.blobs, "grpc+unix:///b");
        CHECK_STREQ(a.dirs, "grpc+http://h:1");
        CHECK_STREQ(a.pathinfo, "grpc+unix:///p");
        CHECK(!a.cache && !a.store);
        toml_free(doc);
        CHECK_OK(compose(cached, &a, &doc, err, sizeof(err)));
        CHECK_STREQ(a.blobs, "grpc+unix:///s");
        CHECK_STREQ(a.cache, "/c");
        toml_free(doc);
        CHECK_OK(compose(memory, &a, &doc, err, sizeof(err)));
        CHECK_STREQ(a.store, "memory://");
        toml_free(doc);
        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                CHECK_EQ(compose(refused[i][0], &a, &doc, err, sizeof(err)), -EINVAL);
                if (!strstr(err, refused[i][1])) {
                        fprintf(stderr, "%zu: %s\n", i, err);
                        CHECK(0);
                }
                toml_free(doc);
        }
}

static void fill(uint8_t *p, size_t n, unsigned seed) {
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t) ((i * 2654435761u + seed) >> 13);
}

static void test_blobs(struct cas_store *c, struct daemon *d) {
        static const size_t sizes[] = { 0, 1, 16384, 16385, (1u << 20) - 1, (1u << 20) + 7, 3u << 20 };
        for (size_t k = 0; k < ELEMENTSOF(sizes); k++) {
                size_t n = sizes[k];
                uint8_t *data = malloc(n + 1), *back = malloc(n + 1);
                struct cas_digest want, got;
                struct cas_blob_reader *r = NULL;
                struct cas_blob_writer *w = NULL;
                uint64_t size = 0;

                fill(data, n, (unsigned) k);
                cas_digest_of(data, n, &want);
                /* a streamed write in odd pieces */
                CHECK_OK(cas_blob_writer_new(c->blobs, 0, &w));
                for (size_t off = 0; off < n; off += 77777)
                        CHECK_OK(cas_blob_write(w, data + off, n - off < 77777 ? n - off : 77777));
                CHECK_OK(cas_blob_commit(w, &got, &size));
                CHECK(cas_digest_equal(&got, &want));
                CHECK_EQ(size, n);
                CHECK_OK(cas_blob_stat(d->store->blobs, &want, &size)); /* it reached the daemon */
                CHECK_EQ(size, n);
                CHECK_OK(cas_blob_stat(c->blobs, &want, &size));
                CHECK_EQ(size, n);
                CHECK_OK(cas_blob_open(c->blobs, &want, &r));
                CHECK_EQ(r->size, n);
                CHECK_EQ(cas_blob_pread_full(r, back, n + 1, 0), (long long) n);
                CHECK(memcmp(back, data, n) == 0);
                cas_blob_reader_close(r);
                free(data);
                free(back);
        }
        struct cas_digest unknown;
        cas_digest_of("unknown", 7, &unknown);
        uint64_t size;
        struct cas_blob_reader *r = NULL;
        CHECK_EQ(cas_blob_stat(c->blobs, &unknown, &size), -ENOENT);
        CHECK_EQ(cas_blob_open(c->blobs, &unknown, &r), -ENOENT);
}

/* root/{a: file, sub/{b: file}, sub2/{deep/}} with a shared empty dir */
static void make_tree(struct cas_store *s, struct cas_directory **ret_dirs, size_t *ret_n) {
        struct cas_digest fa, fb;
        CHECK_OK(cas_blob_put(s->blobs, "file a", 6, 0, &fa));
        CHECK_OK(cas_blob_put(s->blobs, "file b!", 7, 0, &fb));
        struct cas_directory *empty, *sub, *sub2, *root;
        CHECK_OK(cas_directory_new(NULL, 0, &empty, NULL));
        struct cas_node nsub[] = {
                { .kind = CAS_NODE_FILE, .name = "b", .name_len = 1, .digest = fb, .size = 7 },
                { .kind = CAS_NODE_DIRECTORY, .name = "e", .name_len = 1, .digest = empty->digest, .size = 0 },
        };
        CHECK_OK(cas_directory_new(nsub, 2, &sub, NULL));
        struct cas_node nsub2[] = {
                { .kind = CAS_NODE_DIRECTORY, .name = "deep", .name_len = 4, .digest = empty->digest, .size = 0 },
        };
        CHECK_OK(cas_directory_new(nsub2, 1, &sub2, NULL));
        struct cas_node nroot[] = {
                { .kind = CAS_NODE_FILE, .name = "a", .name_len = 1, .digest = fa, .size = 6 },
                { .kind = CAS_NODE_DIRECTORY, .name = "sub", .name_len = 3, .digest = sub->digest, .size = sub->size },
                { .kind = CAS_NODE_DIRECTORY, .name = "sub2", .name_len = 4, .digest = sub2->digest, .size = sub2->size },
                { .kind = CAS_NODE_SYMLINK, .name = "z", .name_len = 1, .target = "a", .target_len = 1 },
        };
        CHECK_OK(cas_directory_new(nroot, 4, &root, NULL));
        ret_dirs[0] = empty;
        ret_dirs[1] = sub;
        ret_dirs[2] = sub2;
        ret_dirs[3] = root;
        *ret_n = 4;
}

static int count_dir(void *userdata, const struct cas_directory *d) {
        (*(unsigned *) userdata)++;
        return 0;
}

static void test_dirs(struct cas_store *c, struct daemon *d, struct cas_directory **dirs, size_t n) {
        struct cas_directory *got = NULL;
        enum cas_verr why;
        unsigned count = 0;
        uint64_t size;

        /* a parent before its child is refused, nothing stored */
        struct cas_directory *wrong[] = { dirs[3], dirs[1], dirs[2], dirs[0] };
        CHECK(cas_dir_put(c->dirs, wrong, 4, 0, &why) < 0);
        CHECK_EQ(cas_dir_stat(d->store->dirs, &dirs[3]->digest, &size), -ENOENT);
        CHECK_OK(cas_dir_put(c->dirs, dirs, n, 0, &why));
        CHECK_OK(cas_dir_get(c->dirs, &dirs[3]->digest, &got));
        CHECK(cas_digest_equal(&got->digest, &dirs[3]->digest));
        cas_directory_free(got);
        CHECK_OK(cas_dir_stat(c->dirs, &dirs[1]->digest, &size));
        CHECK_EQ(size, dirs[1]->size);
        CHECK_OK(cas_dir_get_recursive(c->dirs, &dirs[3]->digest, count_dir, &count));
        CHECK_EQ(count, 4); /* the shared empty directory once */
        struct cas_digest unknown;
        cas_digest_of("no such directory", 17, &unknown);
        CHECK_EQ(cas_dir_get(c->dirs, &unknown, &got), -ENOENT);
}

static int count_pi(void *userdata, const struct nix_pathinfo *pi) {
        (*(unsigned *) userdata)++;
        return 0;
}

static void test_pathinfo(struct nix_pathinfo_service *pis, struct cas_store *c, struct cas_directory *root) {
        struct cas_node node = { .kind = CAS_NODE_DIRECTORY, .name = "x", .name_len = 1, .digest = root->digest,
                                 .size = root->size };
        uint8_t sha[NIX_SHA256_LEN];
        uint64_t nar_size;
        struct nix_store_path p;
        struct nix_pathinfo *pi = NULL;
        unsigned n = 0;

        CHECK_OK(nar_render(c->blobs, c->dirs, &node, 0, NULL, NULL, &nar_size, sha));
        CHECK_OK(nix_register_nar(pis, &node, "tree", nar_size, sha, &p));
        CHECK_OK(nix_pathinfo_get(pis, p.digest, &pi));
        CHECK_EQ(pi->nar_size, nar_size);
        CHECK(memcmp(pi->nar_sha256, sha, NIX_SHA256_LEN) == 0);
        nix_pathinfo_free(pi);
        CHECK_OK(nix_pathinfo_list(pis, count_pi, &n));
        CHECK_EQ(n, 1);
        uint8_t unknown[NIX_DIGEST_LEN] = { 1 };
        CHECK_EQ(nix_pathinfo_get(pis, unknown, &pi), -ENOENT);
}

static void test_through_daemon(void) {
        char dir[256], cache_dir[300];
        struct daemon d = {};
        struct cas_store *c = NULL, *cached = NULL;
        struct nix_pathinfo_service *pis = NULL, *cpis = NULL;
        struct cas_directory *dirs[4];
        size_t n;

        test_tmp_root("castore-test-remote", dir, sizeof(dir));
        daemon_start(&d, dir);
        struct remote_addrs a = { .store = d.url, .timeout_ms = 10000 };
        CHECK_OK(remote_open(&a, 0, &c, &pis));
        test_blobs(c, &d);
        make_tree(c, dirs, &n);
        test_dirs(c, &d, dirs, n);
        test_pathinfo(pis, c, dirs[3]);

        /* a cache in front: what is read is written back, then served near */
        snprintf(cache_dir, sizeof(cache_dir), "%s/cache", dir);
        a.cache = cache_dir;
        CHECK_OK(remote_open(&a, 0, &cached, &cpis));
        struct cas_directory *got = NULL;
        uint64_t size;
        CHECK_EQ(cas_dir_stat(cached->cache->dirs, &dirs[1]->digest, &size), -ENOENT);
        CHECK_OK(cas_dir_get(cached->dirs, &dirs[3]->digest, &got));
        cas_directory_free(got);
        CHECK_OK(cas_dir_stat(cached->cache->dirs, &dirs[1]->digest, &size)); /* the closure came along */
        const struct cas_node *fa = &dirs[3]->entries[0];
        struct cas_blob_reader *r = NULL;
        CHECK_EQ(cas_blob_stat(cached->cache->blobs, &fa->digest, &size), -ENOENT);
        CHECK_OK(cas_blob_open(cached->blobs, &fa->digest, &r));
        cas_blob_reader_close(r);
        CHECK_OK(cas_blob_stat(cached->cache->blobs, &fa->digest, &size));

        /* the daemon stops: cached reads go on, others fail promptly */
        daemon_stop(&d);
        time_t t0 = time(NULL);
        CHECK_OK(cas_blob_open(cached->blobs, &fa->digest, &r));
        cas_blob_reader_close(r);
        CHECK(cas_blob_open(cached->blobs, &dirs[3]->entries[0].digest, &r) >= 0);
        cas_blob_reader_close(r);
        uint8_t unknown[NIX_DIGEST_LEN] = { 2 };
        struct nix_pathinfo *pi = NULL;
        CHECK_EQ(nix_pathinfo_get(pis, unknown, &pi), -ECONNREFUSED);
        CHECK(time(NULL) - t0 < 15);

        for (size_t i = 0; i < n; i++)
                cas_directory_free(dirs[i]);
        nix_pathinfo_service_free(cpis);
        cas_store_free(cached);
        nix_pathinfo_service_free(pis);
        cas_store_free(c);
        remove_tree(dir);
}

int main(void) {
        log_set_max_level(getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : 0);
        RUN(test_addresses);
        RUN(test_composition);
        RUN(test_through_daemon);
        return *test_exit_code();
}
