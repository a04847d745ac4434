/* A progress line on stderr for long operations (import, verify): shown
 * only when asked (callers ask when stderr is a terminal), redrawn at most
 * four times a second, ended by progress_done.  Not thread-safe: one
 * thread draws it. */
#pragma once

#include <stdbool.h>
#include <time.h>

struct progress {
        bool on;
        bool shown;
        struct timespec last;
};

void progress_init(struct progress *p, bool on);
/* Redraws the line (printf format) unless it was drawn < 250 ms ago. */
void progress_show(struct progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Draws the final state and ends the line. */
void progress_done(struct progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
