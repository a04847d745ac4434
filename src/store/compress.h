/* Streaming compression of NARs for binary caches (none, xz, zstd, bzip2,
 * br): a write callback stacked on another write callback, the mirror of
 * decompress.h.  The one place that maps liblzma, libzstd, libbz2 and
 * libbrotlienc results to errno. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "store/nar_writer.h"
#include "util/macro.h"

struct nix_compress;

/* Whether method is a Compression value we write ("none", "xz", "zstd",
 * "bzip2", "br"). */
bool nix_compress_method_valid(const char *method);

/* The file name extension Nix gives a NAR compressed with method: ".xz",
 * ".zst", ".bz2", ".br", "" for none; NULL for an unknown method. */
const char *nix_compress_extension(const char *method);

/* A compressor for method writing its output to write(userdata), in
 * chunks of at most 128 KiB; memory stays bounded whatever the input
 * (the levels of nix copy: xz preset 6, zstd 3, bzip2 block size 9,
 * brotli quality 11).  -EOPNOTSUPP for an unknown method, -ENOMEM. */
int nix_compress_new(const char *method, nar_write_fn write, void *userdata, struct nix_compress **ret);

/* A nar_write_fn (userdata: the struct nix_compress): compresses len
 * bytes; the sink's error, -ENOMEM, or -EIO (a library failure). */
int nix_compress_write(void *userdata, const void *buf, size_t len);

/* Ends the stream: flushes everything to the sink.  Once only, after the
 * last write. */
int nix_compress_finish(struct nix_compress *c);

void nix_compress_free(struct nix_compress *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nix_compress *, nix_compress_free);
