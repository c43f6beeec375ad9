"""A tiny threaded HTTP server that answers badly on purpose: slow drips, endless bodies,
gzip bombs, huge error pages. It writes raw bytes to the socket (no framework in between),
so an answer is exactly as hostile as a test asks for.

    with Hostile() as server:
        server.on("/drip", drip(every=0.5))
        HttpClient(policy=local_policy(), deadline=1).request("GET", server.url + "/drip")

Each behaviour is a function ``(handler) -> None`` that writes the whole answer to
``handler.wfile``; it stops quietly when the client goes away. The server counts the
requests of each path (:attr:`Hostile.hits`) and the bytes it sent (:attr:`Hostile.sent`).
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Behaviour = Callable[[BaseHTTPRequestHandler], None]
MB = 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args) -> None:  # quiet
        pass

    def _answer(self) -> None:
        hostile = self.server.hostile
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        with hostile.lock:
            hostile.hits[path] += 1
            hostile.bodies.append((path, body))
        behaviour = hostile.routes.get(path)
        if behaviour is None:
            behaviour = status(404, b"not here")
        try:
            behaviour(self)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_HEAD = _answer

    def send(self, data: bytes) -> None:
        """Write and count (the tests compare what was sent with what the client kept)."""
        self.wfile.write(data)
        self.wfile.flush()
        with self.server.hostile.lock:
            self.server.hostile.sent += len(data)

    def head(self, code: int, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {code} X"] + [f"{k}: {v}" for k, v in headers.items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hostile: Hostile


class Hostile:
    def __init__(self) -> None:
        self.routes: dict[str, Behaviour] = {}
        self.hits: Counter[str] = Counter()
        self.bodies: list[tuple[str, bytes]] = []
        self.sent = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._server: _Server | None = None
        self.url = ""

    def on(self, path: str, behaviour: Behaviour) -> Hostile:
        self.routes[path] = behaviour
        return self

    def __enter__(self) -> Hostile:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.hostile = self
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


# ---------------------------------------------------------------- behaviours


def status(code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Behaviour:
    """A plain answer with a length."""
    def run(h: _Handler) -> None:
        h.head(code, {"Content-Length": str(len(body)), "Content-Type": "application/json", **(headers or {})})
        h.send(body)
    return run


def drip(code: int = 200, every: float = 0.5, length: int | None = None, most: int = 10_000) -> Behaviour:
    """Headers at once, then one byte every ``every`` seconds (each well inside a read timeout).
    With ``length`` the answer declares a Content-Length; without, it ends when the connection does."""
    def run(h: _Handler) -> None:
        headers = {"Content-Type": "application/json"}
        headers.update({"Content-Length": str(length)} if length is not None else {"Connection": "close"})
        h.head(code, headers)
        for _ in range(most if length is None else min(most, length)):
            if h.server.hostile.stopping.wait(every):
                return
            h.send(b" ")
    return run


def drip_headers(every: float = 0.5) -> Behaviour:
    """The status line and headers one byte at a time, never finishing."""
    def run(h: _Handler) -> None:
        for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 100_000:
            if h.server.hostile.stopping.wait(every):
                return
            h.send(bytes([byte]))
    return run


def endless(code: int = 200, chunk: bytes = b'{"results":[' + b'{"id":"1"},' * 6000, most: int = 100 * 1024 * MB) -> Behaviour:
    """A body that never ends (up to ``most`` bytes), framed by closing the connection."""
    def run(h: _Handler) -> None:
        h.head(code, {"Content-Type": "application/json", "Connection": "close"})
        sent = 0
        while sent < most and not h.server.hostile.stopping.is_set():
            h.send(chunk)
            sent += len(chunk)
    return run


def declared(code: int, length: int) -> Behaviour:
    """Declares a huge Content-Length, then sends a little and waits (a client that believes it reads forever)."""
    def run(h: _Handler) -> None:
        h.head(code, {"Content-Type": "application/octet-stream", "Content-Length": str(length)})
        h.send(b"x" * 1024)
        h.server.hostile.stopping.wait(5)
    return run


def gzip_bomb(code: int = 200, unpacked: int = 4 * 1024 * MB) -> Behaviour:
    """``Content-Encoding: gzip`` whose body unpacks to ``unpacked`` bytes of zeros (about a
    thousandth of that on the wire), sent as it is compressed, framed by closing the connection."""
    def run(h: _Handler) -> None:
        h.head(code, {"Content-Type": "application/json", "Content-Encoding": "gzip", "Connection": "close"})
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        zeros = bytes(MB)
        for _ in range(unpacked // MB):
            if h.server.hostile.stopping.is_set():
                return
            out = packer.compress(zeros)
            if out:
                h.send(out)
        h.send(packer.flush())
    return run


def sequence(*behaviours: Behaviour) -> Behaviour:
    """The n-th request gets the n-th behaviour (the last one repeats)."""
    count = [0]
    lock = threading.Lock()

    def run(h: _Handler) -> None:
        with lock:
            n = count[0]
            count[0] += 1
        behaviours[min(n, len(behaviours) - 1)](h)
    return run


def timed(behaviour: Behaviour, log: list[float]) -> Behaviour:
    """Record when each request arrived (monotonic seconds)."""
    def run(h: _Handler) -> None:
        log.append(time.monotonic())
        behaviour(h)
    return run
