/* PathInfo model: building, validation, and the protobuf encoding of
 * tvix.store.v1.PathInfo (see pathinfo.h). */
#include "util/hex.h"
#include "store/pathinfo.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "castore.pb-c.h"
#include "store/nixbase32.h"
#include "pathinfo.pb-c.h"
#include "util/log.h"

typedef Tvix__Store__V1__PathInfo PbPathInfo;
typedef Tvix__Store__V1__NARInfo PbNarInfo;
typedef Tvix__Store__V1__NARInfo__Signature PbSignature;
typedef Tvix__Store__V1__NARInfo__CA PbCa;
typedef Tvix__Store__V1__StorePath PbStorePath;

static const struct {
        size_t len;
        const char *prefix; /* Nix's rendering up to the digest */
} ca_table[_NIX_CA_MAX] = {
        [NIX_CA_NAR_SHA256] = { 32, "fixed:r:sha256:" }, [NIX_CA_NAR_SHA1] = { 20, "fixed:r:sha1:" },
        [NIX_CA_NAR_SHA512] = { 64, "fixed:r:sha512:" }, [NIX_CA_NAR_MD5] = { 16, "fixed:r:md5:" },
        [NIX_CA_TEXT_SHA256] = { 32, "text:sha256:" },   [NIX_CA_FLAT_SHA1] = { 20, "fixed:sha1:" },
        [NIX_CA_FLAT_MD5] = { 16, "fixed:md5:" },        [NIX_CA_FLAT_SHA256] = { 32, "fixed:sha256:" },
        [NIX_CA_FLAT_SHA512] = { 64, "fixed:sha512:" },
};

size_t nix_ca_digest_len(enum nix_ca_hash t) {
        return (unsigned) t < _NIX_CA_MAX ? ca_table[t].len : 0;
}

int nix_ca_to_string(enum nix_ca_hash t, const uint8_t *digest, char *ret) {
        size_t n;

        if ((unsigned) t >= _NIX_CA_MAX)
                return -EINVAL;
        n = strlen(ca_table[t].prefix);
        memcpy(ret, ca_table[t].prefix, n);
        nixbase32_encode(digest, ca_table[t].len, ret + n);
        return 0;
}

int nix_hash_digest_parse(const char *s, size_t len, uint8_t *ret, size_t n) {
        if (len == 2 * n) {
                for (size_t i = 0; i < n; i++) {
                        int hi = hex_digit_value(s[2 * i]), lo = hex_digit_value(s[2 * i + 1]);

                        if (hi < 0 || lo < 0)
                                return -EINVAL;
                        ret[i] = (uint8_t) (hi << 4 | lo);
                }
                return 0;
        }
        if (len == nixbase32_encoded_len(n) && nixbase32_decode(s, len, ret, n) == (ssize_t) n)
                return 0;
        return -EINVAL;
}

int nix_ca_parse(const char *s, size_t len, enum nix_ca_hash *ret_type, uint8_t ret_digest[NIX_CA_DIGEST_MAX]) {
        for (unsigned t = 0; t < _NIX_CA_MAX; t++) {
                size_t n = strlen(ca_table[t].prefix);

                if (len < n || memcmp(s, ca_table[t].prefix, n) != 0)
                        continue;
                if (nix_hash_digest_parse(s + n, len - n, ret_digest, ca_table[t].len) < 0)
                        return -EINVAL;
                *ret_type = (enum nix_ca_hash) t;
                return 0;
        }
        return -EINVAL;
}

void nix_signature_to_string(const struct nix_signature *s, char *ret) {
        size_t n = strlen(s->name);

        memcpy(ret, s->name, n);
        ret[n] = ':';
        base64_encode(s->data, NIX_SIGNATURE_LEN, ret + n + 1);
}

int nix_pathinfo_new(const struct nix_store_path *path, const struct cas_node *root, uint64_t nar_size,
                     const uint8_t nar_sha256[NIX_SHA256_LEN], struct nix_pathinfo **ret) {
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
        char base[NIX_BASENAME_MAX + 1];
        struct cas_node n = *root;
        int r;

        if (!path || !root || !nar_sha256 || !ret)
                return -EINVAL;
        n.name_len = (uint16_t) nix_store_path_basename(path, base);
        n.name = base;
        if (cas_node_check(&n, 0) != CAS_VERR_NONE)
                return -EINVAL;
        pi = calloc(1, sizeof(*pi));
        if (!pi)
                return -ENOMEM;
        r = cas_node_copy(&n, &pi->node, &pi->node_mem);
        if (r < 0)
                return r;
        pi->path = *path;
        pi->nar_size = nar_size;
        memcpy(pi->nar_sha256, nar_sha256, NIX_SHA256_LEN);
        *ret = TAKE_PTR(pi);
        return 0;
}

void nix_pathinfo_free(struct nix_pathinfo *pi) {
        if (!pi)
                return;
        free(pi->node_mem);
        free(pi->references);
        for (size_t i = 0; i < pi->n_signatures; i++)
                free(pi->signatures[i].name);
        free(pi->signatures);
        free(pi);
}

int nix_pathinfo_add_reference(struct nix_pathinfo *pi, const struct nix_store_path *ref) {
        struct nix_store_path *v = reallocarray(pi->references, pi->n_references + 1, sizeof(*v));

        if (!v)
                return -ENOMEM;
        pi->references = v;
        v[pi->n_references++] = *ref;
        return 0;
}

int nix_pathinfo_add_signature(struct nix_pathinfo *pi, const char *name, const uint8_t data[NIX_SIGNATURE_LEN]) {
        struct nix_signature *v;
        char *copy = strdup(name);

        if (!copy)
                return -ENOMEM;
        v = reallocarray(pi->signatures, pi->n_signatures + 1, sizeof(*v));
        if (!v) {
                free(copy);
                return -ENOMEM;
        }
        pi->signatures = v;
        v[pi->n_signatures].name = copy;
        memcpy(v[pi->n_signatures].data, data, NIX_SIGNATURE_LEN);
        pi->n_signatures++;
        return 0;
}

/* Key names as Nix writes them in "name:base64" signature strings. */
static bool signature_name_ok(const char *s) {
        size_t len = strlen(s);

        if (len == 0 || len > NIX_SIGNATURE_NAME_MAX)
                return false;
        for (size_t i = 0; i < len; i++)
                if (s[i] <= ' ' || s[i] > '~' || s[i] == ':')
                        return false;
        return true;
}

const char *nix_pathinfo_check(const struct nix_pathinfo *pi) {
        struct nix_store_path p;

        if (cas_node_check(&pi->node, 0) != CAS_VERR_NONE)
                return "invalid root node";
        if (nix_store_path_from_basename(pi->node.name, pi->node.name_len, &p) < 0)
                return "root node is not named by a valid store path basename";
        if (!nix_store_path_equal(&p, &pi->path))
                return "root node name differs from the store path";
        for (size_t i = 0; i < pi->n_references; i++)
                if (nix_name_check(pi->references[i].name, pi->references[i].name_len) < 0)
                        return "invalid reference name";
        for (size_t i = 0; i < pi->n_signatures; i++)
                if (!signature_name_ok(pi->signatures[i].name))
                        return "invalid signature key name";
        if (pi->has_deriver && nix_name_check(pi->deriver.name, pi->deriver.name_len) < 0)
                return "invalid deriver";
        if (pi->has_ca && nix_ca_digest_len(pi->ca_type) == 0)
                return "unknown content address type";
        return NULL;
}

int nix_pathinfo_encode(const struct nix_pathinfo *pi, uint8_t **ret_buf, size_t *ret_len) {
        PbPathInfo ppi = TVIX__STORE__V1__PATH_INFO__INIT;
        PbNarInfo pni = TVIX__STORE__V1__NARINFO__INIT;
        PbStorePath pderiver = TVIX__STORE__V1__STORE_PATH__INIT;
        PbCa pca = TVIX__STORE__V1__NARINFO__CA__INIT;
        _cleanup_free_ ProtobufCBinaryData *refs = NULL;
        _cleanup_free_ char *names = NULL;
        _cleanup_free_ char **name_ptrs = NULL;
        _cleanup_free_ PbSignature *sigs = NULL;
        _cleanup_free_ PbSignature **sig_ptrs = NULL;
        _cleanup_free_ uint8_t *node_buf = NULL;
        Tvix__Castore__V1__Node *pnode = NULL;
        size_t node_len, len;
        uint8_t *buf;
        int r;

        if (nix_pathinfo_check(pi))
                return -EINVAL;
        /* The node goes through castore's encoder, then back into a
         * protobuf-c struct so it nests in the PathInfo message. */
        r = cas_node_encode(&pi->node, &node_buf, &node_len);
        if (r < 0)
                return r;
        pnode = tvix__castore__v1__node__unpack(NULL, node_len, node_buf);
        if (!pnode)
                return -ENOMEM;
        ppi.node = pnode;

        if (pi->n_references > 0) {
                refs = calloc(pi->n_references, sizeof(*refs));
                names = malloc(pi->n_references * (NIX_BASENAME_MAX + 1));
                name_ptrs = calloc(pi->n_references, sizeof(*name_ptrs));
                if (!refs || !names || !name_ptrs) {
                        r = -ENOMEM;
                        goto out;
                }
                for (size_t i = 0; i < pi->n_references; i++) {
                        refs[i] = (ProtobufCBinaryData){ NIX_DIGEST_LEN, (uint8_t *) pi->references[i].digest };
                        name_ptrs[i] = names + i * (NIX_BASENAME_MAX + 1);
                        nix_store_path_basename(&pi->references[i], name_ptrs[i]);
                }
        }
        ppi.n_references = pi->n_references;
        ppi.references = refs;
        pni.n_reference_names = pi->n_references;
        pni.reference_names = name_ptrs;

        pni.nar_size = pi->nar_size;
        pni.nar_sha256 = (ProtobufCBinaryData){ NIX_SHA256_LEN, (uint8_t *) pi->nar_sha256 };
        if (pi->n_signatures > 0) {
                sigs = calloc(pi->n_signatures, sizeof(*sigs));
                sig_ptrs = calloc(pi->n_signatures, sizeof(*sig_ptrs));
                if (!sigs || !sig_ptrs) {
                        r = -ENOMEM;
                        goto out;
                }
                for (size_t i = 0; i < pi->n_signatures; i++) {
                        tvix__store__v1__narinfo__signature__init(&sigs[i]);
                        sigs[i].name = pi->signatures[i].name;
                        sigs[i].data = (ProtobufCBinaryData){ NIX_SIGNATURE_LEN, (uint8_t *) pi->signatures[i].data };
                        sig_ptrs[i] = &sigs[i];
                }
        }
        pni.n_signatures = pi->n_signatures;
        pni.signatures = sig_ptrs;
        if (pi->has_deriver) {
                pderiver.name = (char *) pi->deriver.name;
                pderiver.digest = (ProtobufCBinaryData){ NIX_DIGEST_LEN, (uint8_t *) pi->deriver.digest };
                pni.deriver = &pderiver;
        }
        if (pi->has_ca) {
                pca.type = (Tvix__Store__V1__NARInfo__CA__Hash) pi->ca_type;
                pca.digest = (ProtobufCBinaryData){ nix_ca_digest_len(pi->ca_type), (uint8_t *) pi->ca_digest };
                pni.ca = &pca;
        }
        ppi.narinfo = &pni;

        len = tvix__store__v1__path_info__get_packed_size(&ppi);
        buf = malloc(len ? len : 1);
        if (!buf) {
                r = -ENOMEM;
                goto out;
        }
        if (tvix__store__v1__path_info__pack(&ppi, buf) != len) {
                free(buf);
                r = -EIO;
                goto out;
        }
        *ret_buf = buf;
        *ret_len = len;
        r = 0;
out:
        tvix__castore__v1__node__free_unpacked(pnode, NULL);
        return r;
}

static const char *path_from_pb(const char *name, ProtobufCBinaryData digest, struct nix_store_path *ret) {
        if (digest.len != NIX_DIGEST_LEN)
                return "store path digest is not 20 bytes";
        if (nix_store_path_new(digest.data, name, strlen(name), ret) < 0)
                return "invalid store path name";
        return NULL;
}

/* Fills pi from an unpacked message; a sentence on the first violation. */
static const char *pathinfo_from_pb(const PbPathInfo *ppi, struct nix_pathinfo *pi, int *ret_errno) {
        const PbNarInfo *ni = ppi->narinfo;
        uint8_t *node_buf = NULL;
        size_t node_len;
        enum cas_verr why;
        const char *w;
        int r;

        *ret_errno = -EBADMSG;
        if (!ppi->node)
                return "no root node";
        if (!ni)
                return "no narinfo";
        /* Re-encode the node so castore's decoder validates it. */
        node_len = tvix__castore__v1__node__get_packed_size(ppi->node);
        node_buf = malloc(node_len ? node_len : 1);
        if (!node_buf) {
                *ret_errno = -ENOMEM;
                return "out of memory";
        }
        tvix__castore__v1__node__pack(ppi->node, node_buf);
        r = cas_node_decode(node_buf, node_len, 0, &pi->node, &pi->node_mem, &why);
        free(node_buf);
        if (r == -ENOMEM) {
                *ret_errno = r;
                return "out of memory";
        }
        if (r < 0)
                return why == CAS_VERR_NODE_EMPTY ? "root node of no kind" : "invalid root node";
        if (nix_store_path_from_basename(pi->node.name, pi->node.name_len, &pi->path) < 0)
                return "root node is not named by a valid store path basename";

        if (ni->nar_sha256.len != NIX_SHA256_LEN)
                return "nar_sha256 is not 32 bytes";
        memcpy(pi->nar_sha256, ni->nar_sha256.data, NIX_SHA256_LEN);
        pi->nar_size = ni->nar_size;

        if (ppi->n_references != ni->n_reference_names)
                return "references and reference_names differ in number";
        if (ppi->n_references > 0) {
                pi->references = calloc(ppi->n_references, sizeof(*pi->references));
                if (!pi->references) {
                        *ret_errno = -ENOMEM;
                        return "out of memory";
                }
        }
        for (size_t i = 0; i < ppi->n_references; i++) {
                const char *name = ni->reference_names[i];

                if (ppi->references[i].len != NIX_DIGEST_LEN)
                        return "reference digest is not 20 bytes";
                if (nix_store_path_from_basename(name, strlen(name), &pi->references[i]) < 0)
                        return "reference name is not a valid store path basename";
                if (memcmp(pi->references[i].digest, ppi->references[i].data, NIX_DIGEST_LEN) != 0)
                        return "reference name does not match its digest";
                pi->n_references++;
        }

        if (ni->n_signatures > 0) {
                pi->signatures = calloc(ni->n_signatures, sizeof(*pi->signatures));
                if (!pi->signatures) {
                        *ret_errno = -ENOMEM;
                        return "out of memory";
                }
        }
        for (size_t i = 0; i < ni->n_signatures; i++) {
                const PbSignature *s = ni->signatures[i];

                if (s->data.len != NIX_SIGNATURE_LEN)
                        return "signature is not 64 bytes";
                if (!signature_name_ok(s->name))
                        return "invalid signature key name";
                pi->signatures[i].name = strdup(s->name);
                if (!pi->signatures[i].name) {
                        *ret_errno = -ENOMEM;
                        return "out of memory";
                }
                memcpy(pi->signatures[i].data, s->data.data, NIX_SIGNATURE_LEN);
                pi->n_signatures++;
        }

        if (ni->deriver) {
                w = path_from_pb(ni->deriver->name, ni->deriver->digest, &pi->deriver);
                if (w)
                        return w;
                pi->has_deriver = true;
        }
        if (ni->ca) {
                size_t want = nix_ca_digest_len((enum nix_ca_hash) ni->ca->type);

                if (want == 0)
                        return "unknown content address type";
                if (ni->ca->digest.len != want)
                        return "content address digest has the wrong length for its type";
                pi->has_ca = true;
                pi->ca_type = (enum nix_ca_hash) ni->ca->type;
                memcpy(pi->ca_digest, ni->ca->digest.data, want);
        }
        *ret_errno = 0;
        return NULL;
}

/* ---- string fields on the wire ----
 * protobuf-c hands string fields out NUL-terminated without their length,
 * so a NUL inside one would silently cut it (and "<valid name>\0junk"
 * would pass as the valid name).  This walks the wire bytes of every string
 * field, nested messages included (by their descriptors), and refuses a
 * NUL.  Runs after protobuf-c accepted the bytes, but checks bounds anyway. */

#define PB_DEPTH_MAX 8 /* the schema nests 3 deep */

static bool pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *ret) {
        uint64_t v = 0;

        for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
                uint8_t b = *(*p)++;

                v |= (uint64_t) (b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *ret = v;
                        return true;
                }
        }
        return false;
}

static bool pb_strings_ok(const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t len, unsigned depth) {
        const uint8_t *end = p + len;

        if (depth > PB_DEPTH_MAX)
                return false;
        while (p < end) {
                const ProtobufCFieldDescriptor *f;
                uint64_t key, n;

                if (!pb_varint(&p, end, &key))
                        return false;
                switch (key & 7) {
                case 0: /* varint */
                        if (!pb_varint(&p, end, &n))
                                return false;
                        break;
                case 1: /* fixed64 */
                        if (end - p < 8)
                                return false;
                        p += 8;
                        break;
                case 5: /* fixed32 */
                        if (end - p < 4)
                                return false;
                        p += 4;
                        break;
                case 2: /* length-delimited */
                        if (!pb_varint(&p, end, &n) || n > (uint64_t) (end - p))
                                return false;
                        f = (key >> 3) <= UINT32_MAX
                                    ? protobuf_c_message_descriptor_get_field(desc, (unsigned) (key >> 3))
                                    : NULL;
                        if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, n))
                                return false;
                        if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && !pb_strings_ok(f->descriptor, p, n, depth + 1))
                                return false;
                        p += n;
                        break;
                default: /* groups: not in this schema */
                        return false;
                }
        }
        return true;
}

int nix_pathinfo_decode(const void *buf, size_t len, struct nix_pathinfo **ret, const char **ret_why) {
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
        PbPathInfo *ppi;
        const char *why;
        int r;

        ppi = tvix__store__v1__path_info__unpack(NULL, len, buf);
        if (!ppi) {
                if (ret_why)
                        *ret_why = "malformed protobuf message";
                return -EBADMSG;
        }
        if (!pb_strings_ok(&tvix__store__v1__path_info__descriptor, buf, len, 0)) {
                tvix__store__v1__path_info__free_unpacked(ppi, NULL);
                if (ret_why)
                        *ret_why = "a string field contains a NUL byte";
                return -EBADMSG;
        }
        pi = calloc(1, sizeof(*pi));
        if (!pi) {
                tvix__store__v1__path_info__free_unpacked(ppi, NULL);
                return -ENOMEM;
        }
        why = pathinfo_from_pb(ppi, pi, &r);
        tvix__store__v1__path_info__free_unpacked(ppi, NULL);
        if (ret_why)
                *ret_why = why;
        if (r < 0)
                return r;
        *ret = TAKE_PTR(pi);
        return 0;
}

int nix_pathinfo_decode_stored(const void *key, size_t key_len, const void *buf, size_t len,
                               struct nix_pathinfo **ret) {
        struct nix_pathinfo *pi = NULL;
        const char *why = NULL;
        int r;

        r = nix_pathinfo_decode(buf, len, &pi, &why);
        if (r >= 0 && (key_len != NIX_DIGEST_LEN || memcmp(key, pi->path.digest, NIX_DIGEST_LEN) != 0)) {
                nix_pathinfo_free(pi);
                r = -EBADMSG;
                why = "stored under another digest";
        }
        if (r == -EBADMSG)
                return log_error_errno(r, "Stored PathInfo is corrupt: %s", why ? why : "?");
        if (r < 0)
                return r;
        *ret = pi;
        return 0;
}
