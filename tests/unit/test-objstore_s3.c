/* Unit tests for the S3 object store's XML reader (ListObjectsV2 pages,
 * error codes: strict about malformed documents) and for the options an
 * s3:// store is opened with (refusals before any request).  Requests to a
 * real server are tests/integration/test-s3.sh's. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "castore/objstore.h"
#include "castore/objstore_s3.h"
#include "test.h"
#include "util/macro.h"

struct keys {
        char buf[512];
        int n;
};

static int collect(void *userdata, const char *key) {
        struct keys *k = userdata;

        strcat(k->buf, key);
        strcat(k->buf, "|");
        k->n++;
        return 0;
}

static int page(const char *xml, struct keys *k, bool *truncated, char **token) {
        memset(k, 0, sizeof(*k));
        return s3_xml_list_page(xml, strlen(xml), collect, k, truncated, token);
}

static void test_list_page(void) {
        struct keys k;
        bool t;
        char *token = NULL;

        CHECK_OK(page("<?xml version=\"1.0\"?><ListBucketResult><IsTruncated>true</IsTruncated>"
                      "<Contents><Key>p/a&amp;b</Key><Size>3</Size></Contents>"
                      "<Contents><Key>p/c&#47;d</Key></Contents>"
                      "<NextContinuationToken>tok+/=&lt;</NextContinuationToken></ListBucketResult>",
                      &k, &t, &token));
        CHECK(t);
        CHECK_EQ(k.n, 2);
        CHECK_STREQ(k.buf, "p/a&b|p/c/d|");
        CHECK_STREQ(token, "tok+/=<");
        free(token);
        token = NULL;
        CHECK_OK(page("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>", &k, &t, &token));
        CHECK(!t);
        CHECK_EQ(k.n, 0);
        CHECK(!token);
}

static void test_list_refusals(void) {
        static const char *const bad[] = {
                "<Error><Code>AccessDenied</Code></Error>",
                "<ListBucketResult><Contents><Key>a</Key></Contents></ListBucketResult>",
                "<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>",
                "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a</Contents>",
                "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a&bogus;</Key></Contents>",
                "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Size>1</Size></Contents>",
                "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
        };
        struct keys k;
        bool t;
        char *token = NULL;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                CHECK_EQ(page(bad[i], &k, &t, &token), -EBADMSG);
                CHECK(!token);
        }
}

static void test_error_code(void) {
        char code[32];
        const char *x = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>m</Message></Error>";

        CHECK_OK(s3_xml_error_code(x, strlen(x), code, sizeof(code)));
        CHECK_STREQ(code, "SignatureDoesNotMatch");
        CHECK(s3_xml_error_code("<Error/>", 8, code, sizeof(code)) < 0);
        CHECK(s3_xml_error_code("<Code>a b</Code>", 16, code, sizeof(code)) < 0);
}

static void test_open_refusals(void) {
        static const char *const plain[] = { "aws_endpoint_url", "http://127.0.0.1:9", NULL };
        static const char *const unknown[] = { "aws_bogus", "1", NULL };
        static const char *const half[] = { "aws_access_key_id", "AK", NULL };
        static const char *const ok[] = { "aws_endpoint_url", "http://127.0.0.1:9/", "aws_allow_http", "true",
                                          "aws_access_key_id", "AK", "aws_secret_access_key", "SK",
                                          "aws_region", "eu-west-1", NULL };
        struct cas_objstore *o = NULL;

        unsetenv("AWS_ENDPOINT_URL");
        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SECRET_ACCESS_KEY");
        CHECK_EQ(cas_objstore_open("s3://bucket/p", plain, &o), -EINVAL);
        CHECK_EQ(cas_objstore_open("s3://bucket/p", unknown, &o), -EINVAL);
        CHECK_EQ(cas_objstore_open("s3://bucket/p", half, &o), -EINVAL);
        CHECK_EQ(cas_objstore_open("s3://B_D/p", ok, &o), -EINVAL);
        CHECK_EQ(cas_objstore_open("s3://bucket/../p", ok, &o), -EINVAL);
        CHECK_OK(cas_objstore_open("s3://bucket/some/prefix/", ok, &o));
        cas_objstore_free(o);
}

int main(void) {
        RUN(test_list_page);
        RUN(test_list_refusals);
        RUN(test_error_code);
        RUN(test_open_refusals);
        return 0;
}
