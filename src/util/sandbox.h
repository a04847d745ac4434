/* Confinement for long-running daemons that parse kernel- or guest-supplied
 * bytes: no_new_privs, capabilities dropped, file-system access limited to
 * given trees (Landlock) and a system-call allowlist (seccomp, libseccomp).
 * Entered once, after set-up (mounting, opening sockets) and before
 * serving; it applies to every thread started afterwards. */
#pragma once

#include <stdbool.h>

struct sandbox_config {
        /* NULL-terminated lists of trees: everything beneath rw_paths may
         * be read and written (the store, for outboards it repairs),
         * beneath ro_paths only read.  Nothing else can be opened. */
        const char *const *rw_paths;
        const char *const *ro_paths;
        /* Directories in which files may be removed, nothing else (a
         * daemon's own socket, on exit). */
        const char *const *remove_paths;
        /* Keep CAP_SYS_ADMIN (FUSE passthrough needs it to register
         * backing files); every other capability is dropped. */
        bool keep_sys_admin;
        /* Allow opening connections (socket, connect): for a daemon whose
         * store is a remote service. */
        bool network;
        /* Allow getting and setting options of sockets it holds, and their
         * addresses (an HTTP server tunes the connections it accepts); no
         * new sockets. */
        bool socket_options;
        /* Allow waiting on io_uring rings set up before (io_uring_enter),
         * nothing more: creating rings or registering anything with them
         * stays refused, and the rings accept only what they were
         * restricted to at set-up. */
        bool io_uring;
};

/* 0, or -errno when a step the kernel offers fails (then the caller must
 * not serve).  A kernel without Landlock or seccomp gets the other steps
 * and a warning: the result is logged at info level either way. */
int sandbox_enter(const struct sandbox_config *c);
