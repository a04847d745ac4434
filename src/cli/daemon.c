/* --daemon for the serving commands: fork, let the parent return once the
 * child serves, and leave the caller's terminal, descriptors and working
 * directory behind (its log going to syslog from then on); and readiness
 * for systemd (sd_notify). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/log.h"
#include "util/notify.h"

/* The daemon serves: let the waiting parent return, and let go of the
 * terminal (so that $(castore mount --daemon ...) does not wait for us). */
void cli_daemon_ready(void *userdata) {
        struct cli_daemon *d = userdata;
        int null = d->null_fd;

        if (null >= 0) {
                dup2(null, STDIN_FILENO);
                dup2(null, STDOUT_FILENO);
                if (!d->keep_stderr) {
                        /* from now on errors (a corrupt blob) go to syslog */
                        log_set_target(LOG_TARGET_SYSLOG);
                        dup2(null, STDERR_FILENO);
                }
                close(null);
                d->null_fd = -1;
        }
        (void) !write(d->ready_fd, "1", 1);
        close(d->ready_fd);
        d->ready_fd = -1;
}

int cli_daemonize(struct cli_daemon *d) {
        int p[2], status;
        pid_t pid;
        char c;
        ssize_t n;

        if (pipe2(p, O_CLOEXEC) < 0)
                return log_error_errno(negative_errno(), "pipe: %m");
        fflush(NULL);
        pid = fork();
        if (pid < 0)
                return log_error_errno(negative_errno(), "fork: %m");
        if (pid == 0) {
                /* keep nothing the caller had open but stdio: a pipe
                 * inherited from a shell ($(castore mount --daemon M)) must
                 * not stay open for the mount's life */
                close(p[0]);
                if (p[1] != 3 && dup2(p[1], 3) < 0)
                        _exit(1);
                close_range(4, ~0U, 0);
                setsid();
                d->ready_fd = 3;
                return 0;
        }
        close(p[1]);
        do
                n = read(p[0], &c, 1);
        while (n < 0 && errno == EINTR);
        close(p[0]);
        if (n == 1)
                return 1;
        /* the child failed before the mount served; it said why on stderr */
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        return -EIO;
}

/* Leaves the working directory (it would keep its filesystem busy for as
 * long as the daemon lives) and opens /dev/null for cli_daemon_ready. */
void cli_daemon_prepare(struct cli_daemon *d) {
        int r;

        if (chdir("/") < 0)
                log_debug_errno(negative_errno(), "chdir(/) failed: %m");
        d->null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        r = d->keep_stderr ? 0 : log_open_syslog("castore");
        if (r < 0)
                log_warning_errno(r, "No syslog socket (%m): the detached daemon's log is lost");
}

void cli_serving_prepare(struct cli_daemon *d) {
        if (d)
                cli_daemon_prepare(d);
        (void) notify_open();
}

void cli_serving_ready(struct cli_daemon *d) {
        if (d)
                cli_daemon_ready(d);
        (void) notify_send("READY=1\nSTATUS=Serving");
}

void cli_daemon_done(struct cli_daemon *d) {
        if (d->ready_fd >= 0)
                close(d->ready_fd);
        if (d->null_fd >= 0)
                close(d->null_fd);
        d->ready_fd = d->null_fd = -1;
}
