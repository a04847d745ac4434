/* Streaming decompression of binary cache NARs (none, xz, zstd, bzip2,
 * br) as a read callback stacked on another read callback.  The one place
 * that maps liblzma, libzstd, libbz2 and libbrotlidec results to errno. */
#pragma once

#include <sys/types.h>

#include "store/nar.h"

struct nix_decompress;

/* A decompressor for method (a narinfo Compression value; "" = none)
 * reading its input from read.  -EOPNOTSUPP for an unknown method,
 * -ENOMEM. */
int nix_decompress_new(const char *method, nar_read_fn read, void *userdata, struct nix_decompress **ret);
void nix_decompress_free(struct nix_decompress *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nix_decompress *, nix_decompress_free);

/* A nar_read_fn (userdata: the struct nix_decompress): decompressed bytes,
 * 0 at the end of the compressed stream, -EBADMSG for corrupt or
 * truncated input or trailing bytes after the stream, an input error. */
ssize_t nix_decompress_read(void *userdata, void *buf, size_t len);
