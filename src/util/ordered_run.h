/* Numbered items worked on in parallel and finished in order: worker
 * threads run work(i) on the next free index while the calling thread runs
 * finish(i) for i = 0, 1, ... as soon as work(i) has returned.  The first
 * finish that fails stops the run: workers take no more items, those
 * running complete, and its error is returned. */
#pragma once

#include <stddef.h>

typedef void (*ordered_work_fn)(void *userdata, size_t i);
typedef int (*ordered_finish_fn)(void *userdata, size_t i);

/* Runs n items on up to jobs threads (fewer if a thread cannot be
 * started; what names them in that error).  work keeps its own result in
 * the item for finish to read.  Every work has returned when this does.
 * 0 or the first -errno of finish (or of starting the first thread). */
int ordered_run(size_t n, unsigned jobs, ordered_work_fn work, ordered_finish_fn finish, void *userdata,
                const char *what);
