/* The one mapping of a libcurl transfer's result (its CURLcode and the
 * HTTP status) to a negative errno, for every layer that speaks HTTP
 * through libcurl (the S3 object store, Nix binary caches). */
#pragma once

#include <curl/curl.h>

/* 0 for CURLE_OK with a 2xx status.  An HTTP answer (CURLE_OK, or
 * CURLE_HTTP_RETURNED_ERROR under CURLOPT_FAILONERROR): -ENOENT for 404
 * and 410, -EACCES for 403, -EIO for any other status.  A transfer that
 * failed in libcurl: -ENOMEM, -EHOSTUNREACH (no such host), -ECONNREFUSED
 * (no connection), -ETIMEDOUT, -EINVAL (a malformed URL or an unsupported
 * scheme), -ENOSPC (the write callback refused the data), else -EIO.
 * Pure: safe from any thread. */
int http_errno(CURLcode cc, long status);
