"""A loopback HTTP server for the download tests (standard library only, 127.0.0.1).

Serves the files of a folder with single-range support (like Zenodo or S3) under ``/files/``, and
misbehaves on purpose under other prefixes: ``/drop/`` sends half of the file and closes the
connection (once per file), ``/norange/`` does the same and then ignores Range requests, ``/stall/``
sends half of the file and then nothing (once per file), ``/html/`` answers with a login page,
``/flaky/`` answers 503 once, ``/to-file/`` redirects to ``file:///etc/passwd`` and ``/to-host/``
to the same file under ``/files/`` of the host name ``localhost``.
Every request's path and Range header are recorded in ``Handler.requests``."""

from __future__ import annotations

import http.server
import threading
from contextlib import contextmanager
from functools import partial
from pathlib import Path


class Handler(http.server.SimpleHTTPRequestHandler):
    requests: list = []
    failed_once: set = set()
    stop = threading.Event()  # ends a stalled answer when the server shuts down

    def log_message(self, *args):
        pass

    def _name(self, prefix: str) -> Path:
        return Path(self.directory) / self.path.removeprefix(prefix).split("?")[0]

    def do_GET(self):
        type(self).requests.append((self.path, self.headers.get("Range")))
        if self.path.startswith("/html/"):
            body = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Log in</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path.startswith(("/to-file/", "/to-host/")):
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd" if self.path.startswith("/to-file/") else
                             f"http://localhost:{self.server.server_address[1]}/files/{self.path.split('/', 2)[2]}")
            self.end_headers()
            return
        for prefix in ("/drop/", "/flaky/", "/norange/", "/stall/"):
            if self.path.startswith(prefix) and self.path not in self.failed_once:
                type(self).failed_once.add(self.path)
                if prefix == "/flaky/":
                    self.send_error(503)
                    return
                data = self._name(prefix).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                if prefix == "/stall/":
                    type(self).stop.wait(10)
                self.close_connection = True
                return
        if self.path.startswith("/norange/"):
            return self._serve(self._name("/norange/"), ranges=False)
        for prefix in ("/drop/", "/flaky/", "/stall/", "/files/"):
            if self.path.startswith(prefix):
                return self._serve(self._name(prefix))
        self.send_error(404)

    def _serve(self, path: Path, ranges: bool = True):
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        header = self.headers.get("Range") if ranges else None
        start = int(header.removeprefix("bytes=").split("-")[0]) if header else 0
        if start >= len(data) and header:
            self.send_error(416)
            return
        self.send_response(206 if header else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data) - start))
        if header:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        self.wfile.write(data[start:])


@contextmanager
def serve(root: Path):
    """Serve ``root`` on a free loopback port; yields the base URL."""
    Handler.requests, Handler.failed_once = [], set()
    Handler.stop.clear()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        Handler.stop.set()
        httpd.shutdown()
        httpd.server_close()
