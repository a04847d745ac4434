/* JSON output: one string writer for every --json report.  File names are
 * bytes, not text: valid UTF-8 is written as it is, and each byte that is
 * not part of valid UTF-8 (always 0x80 or more) becomes the escape \udcXX
 * (0xDC00 + the byte, as Python's surrogateescape), so that any name
 * survives a round trip (json.loads, then os.fsencode) and the output is
 * valid JSON. */
#pragma once

#include <stddef.h>
#include <stdio.h>

/* Writes s (len bytes) as a quoted JSON string. */
void json_string(FILE *f, const char *s, size_t len);
/* The same for a NUL-terminated string. */
void json_cstring(FILE *f, const char *s);
