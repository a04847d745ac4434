/* Unit tests for the mapping of libcurl's results to errno. */
#include "util/http_errno.h"
#include "test.h"

static void test_http_status(void) {
        CHECK_EQ(http_errno(CURLE_OK, 200), 0);
        CHECK_EQ(http_errno(CURLE_OK, 206), 0);
        CHECK_EQ(http_errno(CURLE_OK, 404), -ENOENT);
        CHECK_EQ(http_errno(CURLE_OK, 410), -ENOENT);
        CHECK_EQ(http_errno(CURLE_OK, 403), -EACCES);
        CHECK_EQ(http_errno(CURLE_OK, 500), -EIO);
        CHECK_EQ(http_errno(CURLE_OK, 304), -EIO);
        CHECK_EQ(http_errno(CURLE_OK, 0), -EIO);
        /* the same statuses under CURLOPT_FAILONERROR */
        CHECK_EQ(http_errno(CURLE_HTTP_RETURNED_ERROR, 404), -ENOENT);
        CHECK_EQ(http_errno(CURLE_HTTP_RETURNED_ERROR, 403), -EACCES);
        CHECK_EQ(http_errno(CURLE_HTTP_RETURNED_ERROR, 503), -EIO);
}

static void test_transfer_failed(void) {
        /* a status left over from a redirect does not matter */
        CHECK_EQ(http_errno(CURLE_OUT_OF_MEMORY, 0), -ENOMEM);
        CHECK_EQ(http_errno(CURLE_COULDNT_RESOLVE_HOST, 0), -EHOSTUNREACH);
        CHECK_EQ(http_errno(CURLE_COULDNT_CONNECT, 200), -ECONNREFUSED);
        CHECK_EQ(http_errno(CURLE_OPERATION_TIMEDOUT, 0), -ETIMEDOUT);
        CHECK_EQ(http_errno(CURLE_UNSUPPORTED_PROTOCOL, 0), -EINVAL);
        CHECK_EQ(http_errno(CURLE_URL_MALFORMAT, 0), -EINVAL);
        CHECK_EQ(http_errno(CURLE_WRITE_ERROR, 0), -ENOSPC);
        CHECK_EQ(http_errno(CURLE_RECV_ERROR, 0), -EIO);
        CHECK_EQ(http_errno(CURLE_PARTIAL_FILE, 200), -EIO);
}

int main(void) {
        RUN(test_http_status);
        RUN(test_transfer_failed);
        return 0;
}
