/* Service readiness for systemd (Type=notify): the sd_notify(3) protocol,
 * a datagram of "KEY=VALUE" lines to the socket $NOTIFY_SOCKET names. */
#pragma once

/* Connects to $NOTIFY_SOCKET (a path, or "@name" for an abstract socket)
 * and unsets it, so processes started later do not notify in our name.
 * Call before a sandbox forbids sockets.  1 if connected, 0 if there is no
 * $NOTIFY_SOCKET, -errno (logged at debug level) if it cannot be reached. */
int notify_open(void);
/* Sends state (e.g. "READY=1\nSTATUS=Serving") if notify_open connected;
 * else does nothing.  0 or -errno. */
int notify_send(const char *state);
