/* The little XML an S3 server answers with, read minimally and strictly:
 * a ListObjectsV2 page (its keys, whether it is truncated, the next
 * continuation token) and an error document's <Code>.  No general XML
 * parser: the elements castore needs are found by name, their text is
 * entity-decoded, and anything malformed is -EBADMSG. */
#include "castore/objstore_s3.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/macro.h"

/* Decodes XML text [s, s+n) (the five named entities and numeric ASCII
 * references) into a new string. */
static int xml_text(const char *s, size_t n, char **ret) {
        _cleanup_free_ char *out = malloc(n + 1);
        size_t o = 0;

        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n;) {
                static const struct {
                        const char *name;
                        char c;
                } ents[] = { { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' }, { "&apos;", '\'' } };
                bool found = false;

                if (s[i] == '<')
                        return -EBADMSG;
                if (s[i] != '&') {
                        out[o++] = s[i++];
                        continue;
                }
                for (size_t e = 0; e < ELEMENTSOF(ents); e++) {
                        size_t l = strlen(ents[e].name);

                        if (n - i >= l && memcmp(s + i, ents[e].name, l) == 0) {
                                out[o++] = ents[e].c;
                                i += l;
                                found = true;
                                break;
                        }
                }
                if (!found && n - i > 3 && s[i + 1] == '#') {
                        char *end;
                        unsigned long v = strtoul(s + i + 2, &end, 10);

                        if ((size_t) (end - s) >= n || *end != ';' || end == s + i + 2 || v == 0 || v > 127)
                                return -EBADMSG;
                        out[o++] = (char) v;
                        i = (size_t) (end - s) + 1;
                        found = true;
                }
                if (!found)
                        return -EBADMSG;
        }
        out[o] = 0;
        *ret = TAKE_PTR(out);
        return 0;
}

/* Finds <name>text</name> in [p, end): the text's bounds, and where the
 * element ends.  -ENOENT if there is no such element, -EBADMSG if it is not
 * closed. */
static int xml_element(const char *p, const char *end, const char *name, const char **text, size_t *text_len,
                       const char **after) {
        char open[64], close[64];
        const char *a, *b;

        if (snprintf(open, sizeof(open), "<%s>", name) >= (int) sizeof(open) ||
            snprintf(close, sizeof(close), "</%s>", name) >= (int) sizeof(close))
                return -EINVAL;
        a = memmem(p, (size_t) (end - p), open, strlen(open));
        if (!a)
                return -ENOENT;
        a += strlen(open);
        b = memmem(a, (size_t) (end - a), close, strlen(close));
        if (!b)
                return -EBADMSG;
        *text = a;
        *text_len = (size_t) (b - a);
        if (after)
                *after = b + strlen(close);
        return 0;
}

int s3_xml_list_page(const char *xml, size_t len, s3_xml_key_cb cb, void *userdata, bool *ret_truncated,
                     char **ret_token) {
        const char *p = xml, *end = xml + len, *t;
        size_t tl;
        bool truncated;
        int r;

        *ret_token = NULL;
        if (!memmem(xml, len, "<ListBucketResult", 17))
                return -EBADMSG;
        r = xml_element(p, end, "IsTruncated", &t, &tl, NULL);
        if (r < 0)
                return r == -ENOENT ? -EBADMSG : r;
        if (tl == 4 && memcmp(t, "true", 4) == 0)
                truncated = true;
        else if (tl == 5 && memcmp(t, "false", 5) == 0)
                truncated = false;
        else
                return -EBADMSG;
        for (;;) {
                const char *c, *after;
                size_t cl;
                _cleanup_free_ char *key = NULL;

                r = xml_element(p, end, "Contents", &c, &cl, &after);
                if (r == -ENOENT)
                        break;
                if (r < 0)
                        return r;
                r = xml_element(c, c + cl, "Key", &t, &tl, NULL);
                if (r < 0)
                        return -EBADMSG;
                r = xml_text(t, tl, &key);
                if (r < 0)
                        return r;
                r = cb(userdata, key);
                if (r < 0)
                        return r;
                p = after;
        }
        if (truncated) {
                r = xml_element(xml, end, "NextContinuationToken", &t, &tl, NULL);
                if (r < 0 || tl == 0)
                        return -EBADMSG;
                r = xml_text(t, tl, ret_token);
                if (r < 0)
                        return r;
        }
        *ret_truncated = truncated;
        return 0;
}

int s3_xml_error_code(const char *xml, size_t len, char *buf, size_t size) {
        _cleanup_free_ char *code = NULL;
        const char *t;
        size_t tl;
        int r;

        buf[0] = 0;
        r = xml_element(xml, xml + len, "Code", &t, &tl, NULL);
        if (r < 0)
                return r;
        r = xml_text(t, tl, &code);
        if (r < 0)
                return r;
        for (char *c = code; *c; c++)
                if (*c < 0x21 || *c > 0x7e)
                        return -EBADMSG;
        if (strlen(code) >= size)
                return -ENAMETOOLONG;
        strcpy(buf, code);
        return 0;
}
