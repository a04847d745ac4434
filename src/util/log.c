/* Logging implementation: formats into a stack buffer and writes it with a
 * single write(2) or send(2), so lines from different threads never
 * interleave; the sink is stderr, stderr read by the journal, or syslog. */
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int max_level = LOG_LEVEL_NOTICE; /* written before threads start */
static const char *prefix = "";   /* written before threads start */
static const char *ident = "castore"; /* written before threads start */
/* The sink: switched by a daemon when it detaches, while its threads may
 * log, hence atomic.  syslog_fd is set before the switch to LOG_TARGET_SYSLOG
 * and kept for the process' life. */
static int target = LOG_TARGET_STDERR;
static int syslog_fd = -1;

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

void log_set_prefix(const char *p) {
        prefix = p ? p : "";
}

void log_set_target(enum log_target t) {
        if (t == LOG_TARGET_SYSLOG && syslog_fd < 0)
                return;
        __atomic_store_n(&target, t, __ATOMIC_RELEASE);
}

enum log_target log_get_target(void) {
        return __atomic_load_n(&target, __ATOMIC_ACQUIRE);
}

bool log_stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
                return false;
        return st.st_dev == dev && st.st_ino == ino;
}

int log_open_syslog(const char *name) {
        const char *path = getenv("CASTORE_SYSLOG_SOCKET");
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        if (syslog_fd >= 0)
                return 0;
        if (!path || !*path)
                path = "/dev/log";
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        tzset(); /* localtime_r reads the zone once, before any sandbox */
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        if (name)
                ident = name;
        syslog_fd = fd;
        return 0;
}

/* "<PRI>Mmm dd hh:mm:ss ident[pid]: " as syslog(3) sends it, facility daemon. */
static int syslog_header(char *buf, size_t size, int level) {
        struct tm tm;
        time_t now = time(NULL);
        char stamp[32] = "";

        if (localtime_r(&now, &tm))
                strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S ", &tm);
        return snprintf(buf, size, "<%d>%s%s[%d]: ", (3 << 3) | level, stamp, ident, (int) getpid());
}

int log_internal(int level, int error, const char *file, int line, const char *fmt, ...) {
        char buf[2048];
        va_list ap;
        int saved = errno, t = log_get_target();
        int n;

        if (t == LOG_TARGET_SYSLOG)
                n = syslog_header(buf, sizeof(buf), level);
        else if (t == LOG_TARGET_JOURNAL)
                n = snprintf(buf, sizeof(buf), "<%d>", level); /* the journal reads the level, knows the unit */
        else
                n = snprintf(buf, sizeof(buf), "%s", prefix);
        if (max_level >= LOG_LEVEL_DEBUG && n >= 0 && (size_t) n < sizeof(buf))
                n += snprintf(buf + n, sizeof(buf) - n, "(%s:%d) ", file, line);
        if (error != 0)
                errno = error < 0 ? -error : error; /* so that %m prints it */
        va_start(ap, fmt);
        if (n >= 0 && (size_t) n < sizeof(buf))
                n += vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
        va_end(ap);
        if (n < 0)
                n = 0;
        if ((size_t) n >= sizeof(buf) - 1)
                n = sizeof(buf) - 2;
        if (t == LOG_TARGET_SYSLOG)
                (void) !send(syslog_fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        else {
                buf[n++] = '\n';
                (void) !write(STDERR_FILENO, buf, n);
        }
        errno = saved;
        return error;
}
