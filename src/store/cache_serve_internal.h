/* The state cache_serve.c (reading) and cache_upload.c (uploads) share. */
#pragma once

#include <pthread.h>
#include <time.h>

#include "store/cache_serve.h"
#include "store/nar.h"
#include "util/hashmap.h"

/* A NAR uploaded and checked, waiting for its narinfo.  It holds the
 * store's garbage collector lock shared: its tree is named by nothing yet. */
struct nix_pending {
        struct nix_pending *next;
        char *name;           /* "nar/<...>", the narinfo URL it answers to */
        time_t when;
        uint8_t file_sha256[NIX_SHA256_LEN];
        uint64_t file_size;
        struct nar_ingest_result res; /* owns res.mem */
        struct cas_store_lock *lock;
};

/* Lock order: only lock; it is never held during I/O (listings, renders,
 * ingests, registrations happen outside it). */
struct nix_serve {
        struct cas_store *store;         /* immutable */
        struct nix_pathinfo_service *pis; /* immutable */
        struct nix_serve_config cfg;     /* immutable */
        pthread_mutex_t lock;
        struct hashmap index;            /* NAR hash -> path digest (struct nar_index_entry); protected by lock */
        struct nix_pending *pending;     /* newest first; protected by lock */
        size_t n_pending;                /* protected by lock */
};

/* Records that the path with this digest has this NAR hash. */
int nix_serve_index_add(struct nix_serve *s, const uint8_t nar_sha256[NIX_SHA256_LEN],
                        const uint8_t digest[NIX_DIGEST_LEN]);

void nix_pending_free(struct nix_pending *p);
/* Frees every pending NAR (at the end). */
void nix_serve_pending_clear(struct nix_serve *s);
