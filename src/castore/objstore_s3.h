/* The S3 object store's pieces shared between its transport
 * (objstore_s3.c, the only user of libcurl) and its XML reader
 * (objstore_s3_xml.c), which the unit tests call directly. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "castore/objstore.h"

/* Opens objectstore+s3://BUCKET[/PREFIX]: url is "s3://BUCKET/PREFIX",
 * options the query's key, value pairs (aws_endpoint_url,
 * aws_access_key_id, aws_secret_access_key, aws_region, aws_allow_http);
 * those absent come from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_REGION or AWS_DEFAULT_REGION. */
int cas_objstore_s3_new(const char *url, const char *const *options, struct cas_objstore **ret);

/* Called for each <Key> of a ListObjectsV2 page, decoded. */
typedef int (*s3_xml_key_cb)(void *userdata, const char *key);

/* Reads one ListObjectsV2 page: each key to cb, whether more pages
 * follow, and then the continuation token (malloc'ed).  -EBADMSG if the
 * document is not such a page. */
int s3_xml_list_page(const char *xml, size_t len, s3_xml_key_cb cb, void *userdata, bool *ret_truncated,
                     char **ret_token);

/* The <Code> of an S3 error document into buf, or a negative errno. */
int s3_xml_error_code(const char *xml, size_t len, char *buf, size_t size);
