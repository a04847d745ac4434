/* Unit tests for the daemon sandbox: in a child that entered it, files
 * outside the allowed trees cannot be opened, nothing can be executed, no
 * socket can be made, no io_uring used (unless asked for: then only
 * rings made before), and /proc shows no_new_privs, seccomp and no
 * capabilities. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "util/log.h"
#include "util/sandbox.h"
#include "util/uring.h"

static char dir[64] = "/tmp/test-sandbox-XXXXXX";
static char ro_dir[64] = "/tmp/test-sandbox-ro-XXXXXX";

/* The value of a "Key:\t..." line of /proc/self/status, read through an
 * fd opened before the sandbox (which then hides /proc). */
static void status_field(int status_fd, const char *key, char *ret, size_t size) {
        char buf[8192], *line;
        ssize_t n = pread(status_fd, buf, sizeof(buf) - 1, 0);
        size_t k = strlen(key);

        ret[0] = 0;
        CHECK(n > 0);
        buf[n] = 0;
        for (line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
                if (strncmp(line, key, k) == 0 && line[k] == ':') {
                        snprintf(ret, size, "%s", line + k + 1 + strspn(line + k + 1, " \t"));
                        ret[strcspn(ret, "\n")] = 0;
                }
}

static int child(void) {
        const char *rw[] = { dir, NULL }, *ro[] = { ro_dir, NULL };
        struct sandbox_config c = { .rw_paths = rw, .ro_paths = ro };
        int status_fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
        char path[128], v[64];
        int fd;

        CHECK(status_fd >= 0);
        CHECK_OK(sandbox_enter(&c));
        snprintf(path, sizeof(path), "%s/new", dir);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600); /* inside: fine */
        CHECK(fd >= 0);
        close(fd);
        snprintf(path, sizeof(path), "%s/file", ro_dir);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        close(fd);
        CHECK(open(path, O_WRONLY | O_CLOEXEC) < 0); /* read-only tree */
        CHECK(open("/etc/passwd", O_RDONLY | O_CLOEXEC) < 0 && errno == EACCES);
        CHECK(open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC) < 0);
        CHECK(execl("/bin/true", "true", (char *) NULL) < 0);
        CHECK(socket(AF_INET, SOCK_STREAM, 0) < 0 && errno == EPERM);
        CHECK(chmod(path, 0777) < 0);
        /* no io_uring unless asked for (EPERM before the bad descriptor) */
        CHECK(syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0) < 0 && errno == EPERM);
        CHECK(syscall(SYS_io_uring_setup, 4, NULL) < 0 && errno == EPERM);
        status_field(status_fd, "NoNewPrivs", v, sizeof(v));
        CHECK_STREQ(v, "1");
        status_field(status_fd, "Seccomp", v, sizeof(v));
        CHECK_STREQ(v, "2");
        status_field(status_fd, "CapEff", v, sizeof(v));
        CHECK_STREQ(v, "0000000000000000");
        return 0;
}

/* With io_uring: a ring set up before can be waited on, no new ring can
 * be made and nothing registered with the old one. */
static int child_io_uring(void) {
        const char *rw[] = { dir, NULL };
        struct sandbox_config c = { .rw_paths = rw, .io_uring = true };
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        struct io_uring_sqe *sqe;
        struct uring u;
        int r;

        CHECK(fd >= 0);
        r = uring_open(&u, 4, IORING_OP_URING_CMD, fd);
        if (r == -ENOSYS || r == -EPERM)
                return 0; /* no io_uring here */
        CHECK_OK(r);
        CHECK_OK(sandbox_enter(&c));
        sqe = uring_get_sqe(&u);
        CHECK(sqe != NULL);
        sqe->opcode = IORING_OP_URING_CMD;
        CHECK_OK(uring_submit(&u, 1));
        CHECK(uring_peek(&u) != NULL);
        CHECK(syscall(SYS_io_uring_setup, 4, NULL) < 0 && errno == EPERM);
        CHECK(syscall(SYS_io_uring_register, u.fd, IORING_REGISTER_FILES, &fd, 1) < 0 && errno == EPERM);
        uring_close(&u);
        return 0;
}

static void test_confined(void) {
        char path[128], cmd[160];
        pid_t pid;
        int status, fd;

        CHECK(mkdtemp(dir));
        CHECK(mkdtemp(ro_dir));
        snprintf(path, sizeof(path), "%s/file", ro_dir);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        CHECK(fd >= 0);
        close(fd);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
                _exit(child());
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
                _exit(child_io_uring());
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        snprintf(cmd, sizeof(cmd), "rm -rf %s %s", dir, ro_dir);
        CHECK(system(cmd) == 0);
}

int main(void) {
        log_set_max_level(LOG_LEVEL_WARNING);
        RUN(test_confined);
        return 0;
}
