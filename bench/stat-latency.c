/* Stat latency of a BlobService: N BlobService/Stat calls after a
 * warm-up, through castore's own grpc blob backend (the client every
 * castore command uses), one at a time; prints p50, p90 and p99 in ms.
 * Usage: stat-latency ADDR [N] (ADDR: grpc+unix:///path or
 * grpc+http://host:port).  For bench/remote.sh. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "remote/backends.h"

static double now_ms(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double) t.tv_sec * 1e3 + (double) t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
        struct cas_blob_service *blobs = NULL;
        struct cas_digest d;
        uint64_t size;
        int n = argc > 2 ? atoi(argv[2]) : 2000;

        if (argc < 2 || n < 100) {
                fprintf(stderr, "usage: stat-latency ADDR [N >= 100]\n");
                return 2;
        }
        if (remote_blob_grpc_new(argv[1], 0, &blobs) < 0)
                return 1;
        double *t = calloc((size_t) n, sizeof(*t));
        if (!t)
                return 1;
        cas_digest_of("", 0, &d); /* found or not, a Stat is a Stat */
        for (int i = 0; i < n / 10; i++)
                (void) cas_blob_stat(blobs, &d, &size);
        for (int i = 0; i < n; i++) {
                double start = now_ms();
                int r = cas_blob_stat(blobs, &d, &size);
                t[i] = now_ms() - start;
                if (r < 0 && r != -ENOENT) {
                        fprintf(stderr, "stat-latency: Stat failed: %d\n", r);
                        return 1;
                }
        }
        qsort(t, (size_t) n, sizeof(*t), cmp_double);
        printf("%.3f %.3f %.3f %d\n", t[n / 2], t[n * 9 / 10], t[n * 99 / 100], n);
        cas_blob_service_free(blobs);
        free(t);
        return 0;
}
