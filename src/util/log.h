/* Logging with levels to stderr, the journal or syslog; *_errno variants
 * take a negative errno, make %m print it and return it so a failure can be
 * logged and returned in one statement.  Thread-safe (one write(2) or
 * send(2) per message). */
#pragma once

#include <stdarg.h>
#include <stdbool.h>

#include "util/macro.h"

enum log_level { LOG_LEVEL_ERR = 3, LOG_LEVEL_WARNING = 4, LOG_LEVEL_NOTICE = 5, LOG_LEVEL_INFO = 6, LOG_LEVEL_DEBUG = 7 };

/* The process-wide threshold: messages above it are dropped.  Set once at
 * start-up (before threads exist); read without a lock afterwards. */
void log_set_max_level(int level);
int log_get_max_level(void);
void log_set_prefix(const char *prefix); /* e.g. "castore: "; not copied */

/* Where messages go.  STDERR: "prefix message" lines (a terminal, a file).
 * JOURNAL: stderr read by systemd's journal, "<level>message" lines (the
 * journal knows the unit, and takes the level from the prefix).  SYSLOG:
 * datagrams in syslog(3)'s format on the socket log_open_syslog connected
 * (a detached daemon, whose stderr is /dev/null). */
enum log_target { LOG_TARGET_STDERR, LOG_TARGET_JOURNAL, LOG_TARGET_SYSLOG };
/* Safe while other threads log; SYSLOG is ignored unless log_open_syslog
 * succeeded. */
void log_set_target(enum log_target t);
enum log_target log_get_target(void);
/* Whether stderr is the stream $JOURNAL_STREAM names (systemd's journal). */
bool log_stderr_is_journal(void);
/* Connects to the syslog socket (/dev/log, or $CASTORE_SYSLOG_SOCKET, which
 * tests use in place of a syslog daemon) with ident `name` (not copied).
 * Call before a sandbox forbids sockets: the connection is kept, never
 * reopened.  0 or -errno (no syslog daemon: -ENOENT or -ECONNREFUSED). */
int log_open_syslog(const char *name);

/* Returns `error` (a negative errno, or 0) unchanged. */
int log_internal(int level, int error, const char *file, int line, const char *fmt, ...) _printf_(5, 6);

#define log_full_errno(level, error, ...)                                                  \
        ({                                                                                 \
                int _l = (level), _e = (error);                                            \
                _l <= log_get_max_level() ? log_internal(_l, _e, __FILE__, __LINE__, __VA_ARGS__) \
                                          : _e;                                            \
        })

#define log_error_errno(error, ...) log_full_errno(LOG_LEVEL_ERR, (error), __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_LEVEL_WARNING, (error), __VA_ARGS__)
#define log_debug_errno(error, ...) log_full_errno(LOG_LEVEL_DEBUG, (error), __VA_ARGS__)
#define log_error(...) (void) log_full_errno(LOG_LEVEL_ERR, 0, __VA_ARGS__)
#define log_warning(...) (void) log_full_errno(LOG_LEVEL_WARNING, 0, __VA_ARGS__)
#define log_notice(...) (void) log_full_errno(LOG_LEVEL_NOTICE, 0, __VA_ARGS__)
#define log_info(...) (void) log_full_errno(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_debug(...) (void) log_full_errno(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
