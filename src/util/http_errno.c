/* libcurl's result and the HTTP status as one errno (http_errno.h). */
#include "util/http_errno.h"

#include <errno.h>

int http_errno(CURLcode cc, long status) {
        if (cc == CURLE_OK && status >= 200 && status < 300)
                return 0;
        if (cc == CURLE_OK || cc == CURLE_HTTP_RETURNED_ERROR)
                return status == 404 || status == 410 ? -ENOENT : status == 403 ? -EACCES : -EIO;
        switch (cc) {
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_COULDNT_RESOLVE_HOST:
                return -EHOSTUNREACH;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
                return -EINVAL;
        case CURLE_WRITE_ERROR:
                return -ENOSPC;
        default:
                return -EIO;
        }
}
