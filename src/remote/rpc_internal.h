/* What rpc.c (client) and rpc_server.c share on top of gRPC core; only
 * these two files include it. */
#pragma once

#include <grpc/grpc.h>
#include <stdint.h>

gpr_timespec rpc_deadline(unsigned ms);
/* A byte buffer holding a copy of data. */
grpc_byte_buffer *rpc_buffer_new(const void *data, size_t len);
/* Flattens bb into a malloc'ed copy and destroys bb. */
int rpc_buffer_take(grpc_byte_buffer *bb, uint8_t **ret, size_t *ret_len);
/* Runs a batch on call (whose completion queue is cq) and waits up to
 * wait_ms (0: no limit): 0, -EPIPE (the batch failed: the call is over),
 * -ETIMEDOUT (the call was cancelled). */
int rpc_batch(grpc_call *call, grpc_completion_queue *cq, grpc_op *ops, size_t n, unsigned wait_ms);
/* The waiting half of rpc_batch, for a batch started with tag. */
int rpc_batch_wait(grpc_call *call, grpc_completion_queue *cq, void *tag, unsigned wait_ms);
/* Shuts down, drains and destroys a next-type queue; NULL is a no-op. */
void rpc_cq_free(grpc_completion_queue *cq);
