/* libcurl handles acknowledging response headers at once (util/http_ack.h). */
#include "util/http_ack.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static int socket_opened(void *userdata, curl_socket_t fd, curlsocktype purpose) {
        struct http_handle *h = userdata;

        if (purpose == CURLSOCKTYPE_IPCXN)
                h->fd = fd;
        return CURL_SOCKOPT_OK;
}

static int socket_closed(void *userdata, curl_socket_t fd) {
        struct http_handle *h = userdata;

        if (h->fd == fd)
                h->fd = CURL_SOCKET_BAD;
        return close(fd);
}

static size_t header_line(char *buf, size_t size, size_t n, void *userdata) {
        struct http_handle *h = userdata;
        int one = 1;

        if (n == 2 && buf[0] == '\r' && buf[1] == '\n' && h->fd != CURL_SOCKET_BAD)
                (void) setsockopt(h->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one)); /* a hint */
        return size * n;
}

void http_handle_reset(struct http_handle *h) {
        curl_easy_reset(h->curl);
        curl_easy_setopt(h->curl, CURLOPT_SOCKOPTFUNCTION, socket_opened);
        curl_easy_setopt(h->curl, CURLOPT_SOCKOPTDATA, h);
        curl_easy_setopt(h->curl, CURLOPT_CLOSESOCKETFUNCTION, socket_closed);
        curl_easy_setopt(h->curl, CURLOPT_CLOSESOCKETDATA, h);
        curl_easy_setopt(h->curl, CURLOPT_HEADERFUNCTION, header_line);
        curl_easy_setopt(h->curl, CURLOPT_HEADERDATA, h);
}

struct http_handle *http_handle_new(void) {
        struct http_handle *h = malloc(sizeof(*h));

        if (!h)
                return NULL;
        *h = (struct http_handle){ .curl = curl_easy_init(), .fd = CURL_SOCKET_BAD };
        if (!h->curl) {
                free(h);
                return NULL;
        }
        http_handle_reset(h);
        return h;
}

void http_handle_free(struct http_handle *h) {
        if (!h)
                return;
        curl_easy_cleanup(h->curl); /* closes its connections through socket_closed */
        free(h);
}
