"""A tiny threaded HTTP server on 127.0.0.1 for download tests; never the internet.

    with LocalServer() as server:
        server.route("/a.gz", Reply(body=data))                      # 200 with the bytes
        server.route("/b.gz", [Reply(status=500), Reply(body=data)])  # fails once, then works
        url = server.url + "/a.gz"
        ...
        server.count["/a.gz"]                                        # requests received

``Reply.mode`` picks a misbehaviour:
    "ok"        send status, headers and body
    "truncate"  announce the full Content-Length, send half the body, close
    "close"     no Content-Length (HTTP/1.0 close-delimited body), send half the body, close
    "stall"     send the headers and a few bytes, then go silent until the server stops
    "hang"      accept the connection and say nothing until the server stops
Unknown paths get a 404.
"""
import collections
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/octet-stream"
    mode: str = "ok"
    headers: dict = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: a closed socket ends the body

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        server = self.server
        with server.lock:
            n = server.count[self.path]
            server.count[self.path] += 1
        replies = server.routes.get(self.path)
        if replies is None:
            reply = Reply(status=404, body=b"<html>not found</html>", content_type="text/html")
        else:
            reply = replies[min(n, len(replies) - 1)]
        if reply.mode == "hang":
            server.release.wait(10)
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        if reply.mode != "close":
            self.send_header("Content-Length", str(len(reply.body)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        try:
            if reply.mode == "ok":
                self.wfile.write(reply.body)
            elif reply.mode in ("truncate", "close"):
                self.wfile.write(reply.body[: len(reply.body) // 2])
            elif reply.mode == "stall":
                self.wfile.write(reply.body[:10])
                self.wfile.flush()
                server.release.wait(10)
            else:
                raise ValueError(f"unknown mode {reply.mode!r}")
            self.wfile.flush()
        except OSError:
            pass  # the client gave up first: expected in timeout tests
        self.close_connection = True


class LocalServer:
    """Serve programmed replies on 127.0.0.1 at a free port; count requests per path."""

    def __init__(self):
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.routes = {}
        self._httpd.count = collections.Counter()
        self._httpd.lock = threading.Lock()
        self._httpd.release = threading.Event()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def count(self):
        return self._httpd.count

    def route(self, path, replies):
        """Answer ``path`` with ``replies`` (one Reply, or a list used in turn, the last repeating)."""
        self._httpd.routes[path] = [replies] if isinstance(replies, Reply) else list(replies)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.release.set()  # free stalled handlers
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
