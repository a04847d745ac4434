/* Unit tests for the log sinks (stderr, the journal's prefixes, syslog
 * datagrams) and the sd_notify protocol (util/log.c, util/notify.c). */
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "util/log.h"
#include "util/notify.h"

/* A bound datagram socket at path (a leading '@': abstract). */
static int dgram_bind(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t len = offsetof(struct sockaddr_un, sun_path) + strlen(path);
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        CHECK(fd >= 0);
        memcpy(sa.sun_path, path, strlen(path));
        if (path[0] == '@')
                sa.sun_path[0] = 0;
        else
                len++;
        CHECK(bind(fd, (struct sockaddr *) &sa, len) == 0);
        return fd;
}

static void recv_str(int fd, char *buf, size_t size) {
        ssize_t n = recv(fd, buf, size - 1, 0);

        CHECK(n > 0);
        buf[n] = 0;
}

static void test_syslog(const char *dir) {
        char path[256], buf[4096], want[64];
        int fd;

        snprintf(path, sizeof(path), "%s/log", dir);
        fd = dgram_bind(path);
        setenv("CASTORE_SYSLOG_SOCKET", path, 1);
        CHECK_EQ(log_get_target(), LOG_TARGET_STDERR);
        log_set_target(LOG_TARGET_SYSLOG); /* not connected: ignored */
        CHECK_EQ(log_get_target(), LOG_TARGET_STDERR);
        CHECK_OK(log_open_syslog("castore-test"));
        log_set_target(LOG_TARGET_SYSLOG);
        CHECK_EQ(log_get_target(), LOG_TARGET_SYSLOG);
        CHECK_EQ(log_warning_errno(-EIO, "blob %s: %m", "b3:x"), -EIO);
        recv_str(fd, buf, sizeof(buf));
        /* <daemon.warning>Mmm dd hh:mm:ss ident[pid]: message, no newline */
        CHECK(strncmp(buf, "<28>", 4) == 0);
        snprintf(want, sizeof(want), " castore-test[%d]: blob b3:x: Input/output error", (int) getpid());
        CHECK(strstr(buf, want) != NULL);
        CHECK(buf[strlen(buf) - 1] != '\n');
        log_error("e");
        recv_str(fd, buf, sizeof(buf));
        CHECK(strncmp(buf, "<27>", 4) == 0);
        log_set_target(LOG_TARGET_STDERR);
        close(fd);
}

/* The journal target: stderr lines with the level as "<N>" and no prefix;
 * $JOURNAL_STREAM says whether stderr is the journal's stream. */
static void test_journal(const char *dir) {
        char path[256], buf[256] = "", js[64];
        struct stat st;
        int fd, saved = dup(STDERR_FILENO);

        snprintf(path, sizeof(path), "%s/stderr", dir);
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        CHECK(fd >= 0 && saved >= 0);
        CHECK(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
        CHECK(fstat(fd, &st) == 0);
        unsetenv("JOURNAL_STREAM");
        CHECK(!log_stderr_is_journal());
        snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long) st.st_dev, (unsigned long long) st.st_ino + 1);
        setenv("JOURNAL_STREAM", js, 1);
        CHECK(!log_stderr_is_journal());
        snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long) st.st_dev, (unsigned long long) st.st_ino);
        setenv("JOURNAL_STREAM", js, 1);
        CHECK(log_stderr_is_journal());
        log_set_prefix("castore: ");
        log_set_target(LOG_TARGET_JOURNAL);
        log_error("one");
        log_warning("two");
        log_set_target(LOG_TARGET_STDERR);
        log_error("three");
        CHECK(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
        CHECK(pread(fd, buf, sizeof(buf) - 1, 0) > 0);
        CHECK_STREQ(buf, "<3>one\n<4>two\ncastore: three\n");
        close(saved);
        close(fd);
        unsetenv("JOURNAL_STREAM");
}

static void test_notify_at(const char *addr, const char *bind_as) {
        char buf[256];
        int fd = dgram_bind(bind_as);

        setenv("NOTIFY_SOCKET", addr, 1);
        CHECK_EQ(notify_open(), 1);
        CHECK(getenv("NOTIFY_SOCKET") == NULL); /* not passed on to children */
        CHECK_OK(notify_send("READY=1\nSTATUS=Serving"));
        recv_str(fd, buf, sizeof(buf));
        CHECK_STREQ(buf, "READY=1\nSTATUS=Serving");
        close(fd);
}

static void test_notify(const char *dir) {
        char path[256], abstract[64];
        pid_t pid;
        int status;

        /* no $NOTIFY_SOCKET: nothing to do, sending is a no-op */
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                unsetenv("NOTIFY_SOCKET");
                CHECK_EQ(notify_open(), 0);
                CHECK_EQ(notify_send("READY=1"), 0);
                setenv("NOTIFY_SOCKET", "relative/path", 1);
                CHECK_EQ(notify_open(), -EINVAL);
                _exit(0);
        }
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        /* an abstract socket, in a child: the connection lasts the process */
        snprintf(abstract, sizeof(abstract), "@castore-test-notify-%d", (int) getpid());
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                test_notify_at(abstract, abstract);
                _exit(0);
        }
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        snprintf(path, sizeof(path), "%s/notify", dir);
        test_notify_at(path, path);
}

int main(void) {
        char dir[] = "/tmp/castore-test-log.XXXXXX", path[300];

        CHECK(mkdtemp(dir) != NULL);
        test_journal(dir);
        test_syslog(dir);
        test_notify(dir);
        snprintf(path, sizeof(path), "%s/log", dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/notify", dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/stderr", dir);
        unlink(path);
        rmdir(dir);
        return 0;
}
