/* Per-request latency of a FUSE mount: N operations on one file, each of
 * which the kernel must send to the daemon (no cache answers it), one at
 * a time after a warm-up; prints the count and the p50, p90, p99 and mean
 * in microseconds.  Operations:
 *   getattr  statx(AT_STATX_FORCE_SYNC): one GETATTR round trip
 *   read4k   a 4 KiB pread at offset 0 on an O_DIRECT descriptor: one READ
 * Usage: fuse-latency getattr|read4k FILE [N].  For bench/uring.sh. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double) t.tv_sec * 1e6 + (double) t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

/* One operation: 0 or -1 (errno set). */
static int op_getattr(const char *path, int fd, void *buf) {
        struct statx stx;
        return statx(AT_FDCWD, path, AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, &stx);
}

static int op_read4k(const char *path, int fd, void *buf) {
        return pread(fd, buf, 4096, 0) == 4096 ? 0 : -1;
}

int main(int argc, char **argv) {
        int (*op)(const char *, int, void *);
        int n = argc > 3 ? atoi(argv[3]) : 20000, fd = -1;
        double *t, sum = 0;
        void *buf;

        if (argc < 3 || n < 100) {
                fprintf(stderr, "usage: fuse-latency getattr|read4k FILE [N >= 100]\n");
                return 2;
        }
        if (strcmp(argv[1], "getattr") == 0)
                op = op_getattr;
        else if (strcmp(argv[1], "read4k") == 0) {
                op = op_read4k;
                fd = open(argv[2], O_RDONLY | O_DIRECT | O_CLOEXEC);
                if (fd < 0) {
                        perror(argv[2]);
                        return 1;
                }
        } else {
                fprintf(stderr, "fuse-latency: unknown operation %s\n", argv[1]);
                return 2;
        }
        t = calloc((size_t) n, sizeof(*t));
        if (!t || posix_memalign(&buf, 4096, 4096) != 0)
                return 1;
        for (int i = 0; i < n / 10; i++)
                if (op(argv[2], fd, buf) < 0) {
                        perror(argv[2]);
                        return 1;
                }
        for (int i = 0; i < n; i++) {
                double a = now_us();
                if (op(argv[2], fd, buf) < 0) {
                        perror(argv[2]);
                        return 1;
                }
                t[i] = now_us() - a;
                sum += t[i];
        }
        qsort(t, (size_t) n, sizeof(*t), cmp_double);
        printf("%d %.1f %.1f %.1f %.1f\n", n, t[n / 2], t[n * 9 / 10], t[n * 99 / 100], sum / n);
        free(t);
        free(buf);
        if (fd >= 0)
                close(fd);
        return 0;
}
