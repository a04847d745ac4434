#!/usr/bin/python3
"""A minimal binary cache upload target for the tests: GET, HEAD and PUT
of files under a directory (what nix copy --to http:// needs).  Usage:
put_server.py DIR PORTFILE [FAIL_FIRST_N]: listens on 127.0.0.1 on a free
port, written to PORTFILE once listening; the first FAIL_FIRST_N PUTs
answer 503 (to test retries).  Every request is logged to DIR/../requests."""
import http.server
import os
import sys

root, portfile = sys.argv[1], sys.argv[2]
fail_left = [int(sys.argv[3]) if len(sys.argv) > 3 else 0]
log = open(os.path.join(os.path.dirname(os.path.abspath(root)), "requests"), "a", buffering=1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def target(self):
        rel = self.path.split("?", 1)[0].lstrip("/")
        if ".." in rel.split("/"):
            return None
        return os.path.join(root, rel)

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body=b""):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        log.write(f"GET {self.path}\n")
        p = self.target()
        if not p or not os.path.isfile(p):
            return self.reply(404)
        self.reply(200, open(p, "rb").read())

    def do_HEAD(self):
        log.write(f"HEAD {self.path}\n")
        p = self.target()
        self.reply(200 if p and os.path.isfile(p) else 404)

    def do_PUT(self):
        n = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(n)
        log.write(f"PUT {self.path} {self.headers.get('Content-Type')} {len(data)}\n")
        if fail_left[0] > 0:
            fail_left[0] -= 1
            return self.reply(503)
        p = self.target()
        if not p:
            return self.reply(400)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p + ".part", "wb") as f:
            f.write(data)
        os.rename(p + ".part", p)
        self.reply(201)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
