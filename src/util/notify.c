/* sd_notify(3)'s protocol without libsystemd: libsystemd's sd_notify opens
 * a new socket on every call, which the seccomp sandbox of a serving daemon
 * refuses; here the socket is connected once, before the sandbox. */
#include "util/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"

static int notify_fd = -1; /* set before threads start, kept for the process' life */

int notify_open(void) {
        const char *path = getenv("NOTIFY_SOCKET");
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len;
        int fd, r;

        if (notify_fd >= 0)
                return 1;
        if (!path || !*path)
                return 0;
        len = strlen(path);
        if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path))
                return log_debug_errno(-EINVAL, "NOTIFY_SOCKET=%s: not a socket address", path);
        memcpy(sa.sun_path, path, len);
        if (path[0] == '@')
                sa.sun_path[0] = 0; /* abstract: no terminating NUL counted */
        else
                len++;
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_debug_errno(negative_errno(), "Notify socket: %m");
        if (connect(fd, (struct sockaddr *) &sa, offsetof(struct sockaddr_un, sun_path) + len) < 0) {
                r = negative_errno();
                close(fd);
                return log_debug_errno(r, "Cannot reach NOTIFY_SOCKET=%s: %m", path);
        }
        unsetenv("NOTIFY_SOCKET");
        notify_fd = fd;
        return 1;
}

int notify_send(const char *state) {
        if (notify_fd < 0)
                return 0;
        if (send(notify_fd, state, strlen(state), MSG_NOSIGNAL) < 0)
                return log_debug_errno(negative_errno(), "sd_notify: %m");
        return 0;
}
