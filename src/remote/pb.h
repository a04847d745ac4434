/* protobuf-c glue for the remote services: packing any message, a unary
 * call and a streamed send with generated message types, and the method
 * paths under both package names (tvix and snix; same wire bytes). */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "remote/rpc.h"

/* The package prefixes every service is offered and called under. */
extern const char *const pb_castore_packages[2]; /* "tvix.castore.v1", "snix.castore.v1" */
extern const char *const pb_store_packages[2];   /* "tvix.store.v1", "snix.store.v1" */

/* *ret malloc'ed (never NULL, even for an empty message). */
int pb_pack(const ProtobufCMessage *m, uint8_t **ret, size_t *ret_len);
/* Unpacks with the given descriptor: *ret or -EBADMSG. */
int pb_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, ProtobufCMessage **ret);
void pb_free(ProtobufCMessage *m);

int pb_send(struct rpc_call *c, const ProtobufCMessage *m);
/* Receives one request of type d: 1 and *ret, 0 if the client sent none,
 * or the value of rpc_call_fail (INVALID_ARGUMENT for bytes that do not
 * parse). */
int pb_recv(struct rpc_call *c, const ProtobufCMessageDescriptor *d, ProtobufCMessage **ret);
/* A unary call with messages: -EBADMSG for a reply that does not parse. */
int pb_unary(struct rpc_channel *ch, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **ret);

/* The data of a BlobChunk { bytes data = 1; } in place, without a copy
 * (other fields are skipped, as protobuf readers do): 0 or -EBADMSG. */
int pb_blob_chunk_data(const uint8_t *msg, size_t len, const uint8_t **ret, size_t *ret_len);

/* A remote service called under the package the server offers: tvix
 * first; a server that answers UNIMPLEMENTED gets the snix name from then
 * on (pb_switch, after a call failed with -EOPNOTSUPP, says whether to
 * retry). */
struct pb_service {
        struct rpc_channel *channel; /* owned */
        const char *const *packages;
        const char *service;
        int pkg;   /* index into packages (atomic) */
        int known; /* pkg was seen to work (atomic) */
};
/* Connects s to url (grpc+unix:// or grpc+http://); logs errors. */
int pb_service_init(struct pb_service *s, const char *url, unsigned timeout_ms, const char *const *packages,
                    const char *service);
/* "/PACKAGE.SERVICE/METHOD" into buf; returns the package index used. */
int pb_method(struct pb_service *s, const char *method, char *buf, size_t size);
bool pb_switch(struct pb_service *s, int used);
/* Before a call that cannot be replayed (a client stream): settles the
 * package with one unary call of method with req (any answer but
 * UNIMPLEMENTED settles it).  0, or the error of a server not reached. */
int pb_probe(struct pb_service *s, const char *method, const ProtobufCMessage *req);
