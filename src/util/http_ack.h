/* libcurl handles that acknowledge a response's headers at once.  A
 * server that writes the headers and the body separately with Nagle's
 * algorithm on (radosgw does) holds the body until the headers are
 * acknowledged, and Linux delays that ACK on a kept-alive connection:
 * 40 ms per small GET.  These handles remember the socket of their
 * connection and, at the blank line ending the headers, set TCP_QUICKACK
 * on it, which sends the pending ACK. */
#pragma once

#include <curl/curl.h>

struct http_handle {
        CURL *curl;
        /* the socket of the handle's latest connection, or
         * CURL_SOCKET_BAD once closed; used by the thread using the
         * handle only */
        curl_socket_t fd;
};

/* A new handle, set up (as by http_handle_reset); NULL without memory. */
struct http_handle *http_handle_new(void);
/* curl_easy_reset, then the callbacks above set again; the connections
 * the handle keeps stay open.  Callers set no header, socket-option or
 * close-socket callback of their own. */
void http_handle_reset(struct http_handle *h);
void http_handle_free(struct http_handle *h);
