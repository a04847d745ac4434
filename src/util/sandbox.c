/* Daemon confinement: no_new_privs, capabilities, Landlock, seccomp.  The
 * same steps virtiofsd and nydusd take, minus a mount namespace: Landlock
 * confines paths without needing privileges. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <seccomp.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/log.h"
#include "util/macro.h"
#include "util/sandbox.h"

/* Rights newer than the headers this is built with; the kernel's ABI
 * version says which it knows. */
#define LL_FS_REFER (1ULL << 13)    /* ABI 2 */
#define LL_FS_TRUNCATE (1ULL << 14) /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */
#define LL_NET_BIND_TCP (1ULL << 0)  /* ABI 4 */
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0) /* ABI 6 */
#define LL_SCOPE_SIGNAL (1ULL << 1)

/* struct landlock_ruleset_attr as of ABI 6; older kernels take a prefix. */
struct ll_ruleset_attr {
        uint64_t handled_access_fs;
        uint64_t handled_access_net;
        uint64_t scoped;
};

static uint64_t ll_fs_rights(int abi) {
        uint64_t r = (1ULL << 13) - 1; /* ABI 1: EXECUTE .. MAKE_SYM */

        if (abi >= 2)
                r |= LL_FS_REFER;
        if (abi >= 3)
                r |= LL_FS_TRUNCATE;
        if (abi >= 5)
                r |= LL_FS_IOCTL_DEV;
        return r;
}

static int ll_allow(int ruleset, const char *path, uint64_t rights) {
        struct landlock_path_beneath_attr pb = { .allowed_access = rights };
        _cleanup_close_ int fd = open(path, O_PATH | O_CLOEXEC);

        if (fd < 0)
                return log_error_errno(negative_errno(), "sandbox: cannot open %s: %m", path);
        pb.parent_fd = fd;
        if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0)
                return log_error_errno(negative_errno(), "sandbox: cannot allow %s: %m", path);
        return 0;
}

/* Nothing but the given trees can be opened, nothing outside them
 * executed, no TCP bound or (unless network) connected, no abstract socket or outside
 * signal reached. */
static int landlock_enter(const struct sandbox_config *c) {
        struct ll_ruleset_attr attr = { 0 };
        _cleanup_close_ int ruleset = -1;
        size_t attr_size = sizeof(uint64_t);
        uint64_t fs;
        int abi, r;

        abi = (int) syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
        if (abi < 0) {
                log_warning("sandbox: this kernel has no Landlock; file access is not confined");
                return 0;
        }
        fs = ll_fs_rights(abi);
        attr.handled_access_fs = fs;
        if (abi >= 4) {
                attr.handled_access_net = LL_NET_BIND_TCP | (c->network ? 0 : LL_NET_CONNECT_TCP);
                attr_size = 2 * sizeof(uint64_t);
        }
        if (abi >= 6) {
                attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
                attr_size = sizeof(attr);
        }
        ruleset = (int) syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
        if (ruleset < 0)
                return log_error_errno(negative_errno(), "sandbox: cannot create a Landlock ruleset: %m");
        /* EXECUTE too: the kernel does passthrough I/O (an exec of a
         * passthrough file included) with the daemon's credentials, and so
         * within its domain; the daemon itself cannot execve (seccomp). */
        for (const char *const *p = c->rw_paths; p && *p; p++) {
                r = ll_allow(ruleset, *p, fs);
                if (r < 0)
                        return r;
        }
        for (const char *const *p = c->ro_paths; p && *p; p++) {
                r = ll_allow(ruleset, *p, LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR);
                if (r < 0)
                        return r;
        }
        for (const char *const *p = c->remove_paths; p && *p; p++) {
                r = ll_allow(ruleset, *p, LANDLOCK_ACCESS_FS_REMOVE_FILE);
                if (r < 0)
                        return r;
        }
        if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0)
                return log_error_errno(negative_errno(), "sandbox: cannot enter the Landlock domain: %m");
        return abi;
}

/* Drops the bounding and ambient sets (while CAP_SETPCAP allows), then
 * every effective, permitted and inheritable capability but, if asked,
 * CAP_SYS_ADMIN. */
static int caps_drop(bool keep_sys_admin) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2] = { { 0 } };

        (void) prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        for (int cap = 0; cap <= 63; cap++) {
                if (keep_sys_admin && cap == CAP_SYS_ADMIN)
                        continue;
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno == EINVAL)
                        break; /* past the last capability this kernel has */
        }
        if (keep_sys_admin && syscall(SYS_capget, &h, d) == 0 &&
            (d[CAP_SYS_ADMIN / 32].effective & (1u << (CAP_SYS_ADMIN % 32)))) {
                memset(d, 0, sizeof(d));
                d[CAP_SYS_ADMIN / 32].effective = d[CAP_SYS_ADMIN / 32].permitted = 1u << (CAP_SYS_ADMIN % 32);
        } else
                memset(d, 0, sizeof(d));
        h.pid = 0;
        if (syscall(SYS_capset, &h, d) < 0)
                return log_error_errno(negative_errno(), "sandbox: cannot drop capabilities: %m");
        return 0;
}

/* What a serving daemon does: I/O on descriptors it holds, files under the
 * store, memory, threads, signals, time.  Not here, among others: execve,
 * socket/bind/connect, mount, ptrace, chmod/chown, setuid, kill of others,
 * module and key management. */
static const int allowed_syscalls[] = {
        SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(pread64),
        SCMP_SYS(pwrite64), SCMP_SYS(preadv), SCMP_SYS(pwritev), SCMP_SYS(preadv2), SCMP_SYS(pwritev2),
        SCMP_SYS(lseek), SCMP_SYS(close), SCMP_SYS(close_range), SCMP_SYS(open), SCMP_SYS(openat),
        SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(statx), SCMP_SYS(stat), SCMP_SYS(lstat),
        SCMP_SYS(fstatfs), SCMP_SYS(statfs), SCMP_SYS(getdents64), SCMP_SYS(readlink), SCMP_SYS(readlinkat),
        SCMP_SYS(access), SCMP_SYS(faccessat), SCMP_SYS(faccessat2), SCMP_SYS(fcntl), SCMP_SYS(dup),
        SCMP_SYS(dup2), SCMP_SYS(dup3), SCMP_SYS(flock), SCMP_SYS(fsync), SCMP_SYS(fdatasync),
        SCMP_SYS(syncfs), SCMP_SYS(rename), SCMP_SYS(renameat), SCMP_SYS(renameat2), SCMP_SYS(unlink),
        SCMP_SYS(unlinkat), SCMP_SYS(mkdir), SCMP_SYS(mkdirat), SCMP_SYS(pipe), SCMP_SYS(pipe2),
        SCMP_SYS(ioctl), SCMP_SYS(mmap), SCMP_SYS(munmap),
        SCMP_SYS(mremap), SCMP_SYS(mprotect), SCMP_SYS(madvise), SCMP_SYS(brk), SCMP_SYS(futex),
        SCMP_SYS(set_robust_list), SCMP_SYS(get_robust_list), SCMP_SYS(rseq), SCMP_SYS(clone),
        SCMP_SYS(clone3), SCMP_SYS(set_tid_address), SCMP_SYS(arch_prctl), SCMP_SYS(exit),
        SCMP_SYS(exit_group), SCMP_SYS(gettid), SCMP_SYS(getpid), SCMP_SYS(getppid), SCMP_SYS(tgkill),
        SCMP_SYS(tkill), SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn),
        SCMP_SYS(sigaltstack), SCMP_SYS(rt_sigtimedwait), SCMP_SYS(signalfd4), SCMP_SYS(poll),
        SCMP_SYS(ppoll), SCMP_SYS(select), SCMP_SYS(pselect6), SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl),
        SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(eventfd2), SCMP_SYS(sendmsg),
        SCMP_SYS(recvmsg), SCMP_SYS(sendto), SCMP_SYS(recvfrom), SCMP_SYS(accept4), SCMP_SYS(shutdown),
        SCMP_SYS(socketpair), /* unnamed pairs between a daemon's own threads */
        SCMP_SYS(getrandom), SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday),
        SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep), SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity),
        SCMP_SYS(getrlimit), SCMP_SYS(prlimit64), SCMP_SYS(uname), SCMP_SYS(prctl), SCMP_SYS(getuid),
        SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid), SCMP_SYS(restart_syscall), SCMP_SYS(wait4),
        SCMP_SYS(waitid), SCMP_SYS(chdir), SCMP_SYS(fchdir), SCMP_SYS(setsid),
};

/* For a daemon whose store is a remote service: it opens connections. */
static const int network_syscalls[] = {
        SCMP_SYS(socket), SCMP_SYS(socketpair), SCMP_SYS(connect), SCMP_SYS(getsockopt), SCMP_SYS(setsockopt),
        SCMP_SYS(getsockname), SCMP_SYS(getpeername), SCMP_SYS(epoll_pwait2), SCMP_SYS(timerfd_create),
        SCMP_SYS(timerfd_settime), SCMP_SYS(sched_getparam), SCMP_SYS(sched_getscheduler), SCMP_SYS(getcpu),
        SCMP_SYS(memfd_create), SCMP_SYS(ftruncate), /* a fetched blob is kept in memory */
};

/* For a server that tunes the sockets it accepted. */
static const int socket_option_syscalls[] = {
        SCMP_SYS(getsockopt), SCMP_SYS(setsockopt), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
};

/* A refused call fails with EPERM rather than killing the daemon: the
 * allowlist, not the action, is what confines it. */
static int seccomp_enter(const struct sandbox_config *c) {
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
        int r;

        if (!ctx)
                return log_error_errno(-ENOMEM, "sandbox: cannot create a seccomp filter");
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(allowed_syscalls); i++)
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed_syscalls[i], 0);
        for (size_t i = 0; c->network && r >= 0 && i < ELEMENTSOF(network_syscalls); i++)
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, network_syscalls[i], 0);
        /* the network list has them too: adding a rule twice is refused */
        for (size_t i = 0; c->socket_options && !c->network && r >= 0 && i < ELEMENTSOF(socket_option_syscalls); i++)
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, socket_option_syscalls[i], 0);
        if (c->io_uring && r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(io_uring_enter), 0);
        if (r >= 0)
                r = seccomp_load(ctx);
        seccomp_release(ctx);
        if (r < 0)
                return log_error_errno(r, "sandbox: cannot install the seccomp filter: %m");
        return 0;
}

int sandbox_enter(const struct sandbox_config *c) {
        int r, abi;

        if (!c)
                return -EINVAL;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return log_error_errno(negative_errno(), "sandbox: cannot set no_new_privs: %m");
        abi = landlock_enter(c);
        if (abi < 0)
                return abi;
        r = caps_drop(c->keep_sys_admin);
        if (r < 0)
                return r;
        r = seccomp_enter(c);
        if (r < 0)
                return r;
        log_info("sandbox: no_new_privs, %s, Landlock ABI %d, seccomp allowlist%s%s",
                 c->keep_sys_admin ? "only CAP_SYS_ADMIN kept" : "no capabilities", abi,
                 c->network ? " with outgoing connections" : "", c->io_uring ? " with io_uring_enter" : "");
        return 0;
}
