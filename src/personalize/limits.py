"""Rate limits: per client address and per key, over a sliding minute.

Three limits, each a setting (0 turns it off):

- ``RATE_LIMIT_PER_IP``: requests to ``/api/`` from one client address, counted
  before anything else is looked at (an unknown key is counted too);
- ``RATE_LIMIT_PER_SITE``: requests that a site's public key opens (the widget:
  events and recommendations), whatever address they come from;
- ``RATE_LIMIT_PER_SECRET_KEY``: requests that a site's secret key opens (the
  shop's own servers: catalogue, profiles, segments).

A request over a limit is answered 429 in the API's error shape, with the name of
the setting in the message and ``Retry-After`` set to the seconds until a request
would be let through again.

The minute slides: hits are counted per whole minute, and a request is over the
limit when this minute's hits plus the last minute's, weighted by the share of the
last minute still inside the sliding 60 s, exceed it. Fixed windows alone would let
a client spend a limit at the end of one minute and again at the start of the next:
twice the limit in a second. Only requests let through are counted: a client that
keeps asking beyond its limit still gets its limit's worth a minute, no more.

Counters live in Redis when ``REDIS_URL`` is set, so every process and machine
counts together, without Redis on the request path: each process counts in memory
and a background thread adds its new hits to the shared counters every 0.2 s (one
pipelined round trip, an atomic Lua ``INCRBY`` + ``EXPIRE`` per counter) and reads
back the totals; see :class:`Limiter`. Without Redis, or while it cannot be reached,
each process counts alone (the limit then holds per process: fail open, never a 500).

The client address is ``remote_addr``. Behind reverse proxies set
``TRUSTED_PROXIES`` to how many of them add to ``X-Forwarded-For``; only then is
that header believed (werkzeug's ProxyFix), since any client can send one.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import math
import os
import threading
import time

from flask import Flask, current_app, request

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
RETRY_SECONDS = 5.0  # after a Redis failure, count in memory this long before trying again
PREFIX = "personalize:rate:"

# atomic: add a process's new hits to a window's counter, set its expiry on creation, return the total
_ADD = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return n
"""


class Limiter:
    """Counts hits per bucket and window in this process; with ``url``, also in Redis, shared by every process.

    A request never waits for Redis: :meth:`hit` counts in memory and decides on this
    process's new hits plus the last total Redis reported. A background thread
    (:meth:`flush`, every ``sync_seconds``) adds this process's new hits to the
    shared counters in one pipelined round trip and reads back the totals. Buckets
    at half their limit or more also have their totals re-read when this process has
    nothing new for them, so another process's flood is seen within two ``sync_seconds``.
    A process may thus admit what arrives in that interval beyond a limit: the price
    of keeping Redis off the request path. If Redis fails, the counts simply stay
    local until it answers again.
    """

    def __init__(self, url: str | None = None, prefix: str = PREFIX, window: int = WINDOW_SECONDS, sync_seconds: float = 0.2):
        self.url = url or None
        self.prefix = prefix
        self.window = int(window)
        self.sync_seconds = float(sync_seconds)
        self._client = None
        self._script = None
        self._pid = None
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        # (bucket, window number) -> [hits not yet in Redis, total Redis last reported, limit]
        self._counts: dict[tuple[str, int], list[int]] = {}
        self._flusher: threading.Thread | None = None
        self._stopped = threading.Event()

    def hit(self, bucket: str, limit: int, now: float | None = None) -> int | None:
        """Count one request in ``bucket`` if it fits ``limit`` over the sliding minute and return ``None``;
        else count nothing and return the seconds until one more request would fit."""
        now = time.time() if now is None else now
        number = int(now // self.window)
        elapsed = now - number * self.window
        with self._lock:
            entry = self._counts.get((bucket, number))
            if entry is None:
                if len(self._counts) >= 100_000:  # forget finished windows (an address flood makes many buckets)
                    self._counts = {k: v for k, v in self._counts.items() if k[1] >= number - 1}
                entry = self._counts[(bucket, number)] = [0, 0, limit]
            entry[2] = limit
            hits = entry[0] + entry[1]
            before = self._counts.get((bucket, number - 1))
            earlier = before[0] + before[1] if before is not None else 0
            fits = earlier * (1 - elapsed / self.window) + hits + 1 <= limit + 1e-9
            if fits:
                entry[0] += 1
        if self.url and (self._flusher is None or self._pid != os.getpid()):
            self._start_flusher()
        return None if fits else max(1, math.ceil(self._wait(earlier, hits, elapsed, limit)))

    def _wait(self, earlier: int, hits: int, elapsed: float, limit: int) -> float:
        """Seconds until one more request fits: the last minute's hits weigh less as it slides out, this one's in the next."""
        window = self.window
        if hits + 1 <= limit:  # still in this minute, once enough of the last one has slid out
            return window * (1 - (limit - hits - 1) / earlier) - elapsed
        return window - elapsed + window * (1 - (limit - 1) / hits)  # in the next minute, as this one slides out

    # -- sharing through Redis -------------------------------------------------------------------

    def _redis(self):
        if not self.url or time.monotonic() < self._down_until:
            return None
        if self._client is None or self._pid != os.getpid():  # a forked worker opens its own sockets
            import redis

            self._client = redis.Redis.from_url(self.url, socket_connect_timeout=0.25, socket_timeout=0.5)
            self._script = self._client.register_script(_ADD)
            self._pid = os.getpid()
        return self._client

    def _start_flusher(self) -> None:
        with self._flush_lock:
            if self._flusher is not None and self._flusher.is_alive() and self._pid == os.getpid():
                return
            self._redis()  # binds the client to this process
            self._stopped.clear()
            self._flusher = threading.Thread(target=self._flush_forever, name="personalize-rate-limits", daemon=True)
            self._flusher.start()

    def _flush_forever(self) -> None:
        while not self._stopped.wait(self.sync_seconds):
            self.flush()

    def flush(self) -> bool:
        """Share this process's new hits and learn the totals (one round trip); ``False`` if Redis did not answer."""
        client = self._redis()
        if client is None:
            return False
        number = int(time.time() // self.window)
        with self._lock:
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= number - 1}
            sent = [(k, v[0]) for k, v in self._counts.items() if v[0] > 0]
            watched = [k for k, v in self._counts.items() if v[0] == 0 and k[1] == number and 2 * v[1] >= v[2]]
            for k, _n in sent:
                self._counts[k][0] = 0
        if not sent and not watched:
            return True
        import redis

        try:
            pipe = client.pipeline(transaction=False)
            for (bucket, n), delta in sent:
                self._script(keys=[f"{self.prefix}{bucket}:{n}"], args=[delta, self.window + 1], client=pipe)
            for bucket, n in watched:
                pipe.get(f"{self.prefix}{bucket}:{n}")
            totals = pipe.execute()
        except (redis.RedisError, OSError) as exc:
            if time.monotonic() > self._down_until + RETRY_SECONDS:
                log.warning("rate limits: Redis at %s unavailable (%s); counting in this process", self.url, exc)
            self._down_until = time.monotonic() + RETRY_SECONDS
            with self._lock:  # keep the hits: they still count here
                for k, delta in sent:
                    if k in self._counts:
                        self._counts[k][0] += delta
            return False
        with self._lock:
            for k, total in zip([k for k, _d in sent] + watched, totals, strict=True):
                if k in self._counts and total is not None:
                    entry = self._counts[k]
                    entry[1] = max(entry[1], int(total))  # the hits just sent are inside the shared total
        return True

    def close(self) -> None:
        self._stopped.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(timeout=2)
        self._flusher = None
        if self._client is not None:
            self._client.close()
            self._client = None


def limiter(app: Flask | None = None) -> Limiter:
    app = app or current_app
    found: Limiter = app.extensions["personalize.limits"]
    url = app.config.get("REDIS_URL") or None
    if found.url != url:  # REDIS_URL changed after the app was built (tests do this)
        found.close()
        found.url, found._down_until = url, 0.0
    return found


def _check(setting: str, bucket: str, field: str | None, who: str) -> None:
    limit = int(current_app.config.get(setting) or 0)
    if limit <= 0:
        return
    retry_after = limiter().hit(bucket, limit)
    if retry_after is not None:
        from .api.errors import ApiError

        raise ApiError(
            429, "rate_limited",
            f"more than {limit} requests a minute {who} ({setting}); retry in {retry_after} s",
            field, {"Retry-After": str(retry_after)},
        )


def client_address() -> str:
    """The client's address: ``remote_addr``, which ProxyFix has set from trusted proxies' headers."""
    return request.remote_addr or "unknown"


def address_bucket(address: str) -> str:
    """The counter name of a client address: a keyed hash, so Redis never holds the address itself
    (and its keys cannot be turned back into addresses without ``SECRET_KEY``)."""
    return _keyed_hash(str(current_app.config.get("SECRET_KEY") or ""), address)


@functools.lru_cache(maxsize=8192)  # a visitor's address comes back with every request: hash it once
def _keyed_hash(secret: str, address: str) -> str:
    return "ip:" + hmac.new(secret.encode(), address.encode(), hashlib.sha256).hexdigest()[:20]


def check_address() -> None:
    """Before every API request: the per-address limit (nothing is computed while it is off)."""
    if current_app.config.get("RATE_LIMIT_PER_IP") and request.path.startswith("/api/"):
        who = client_address()
        _check("RATE_LIMIT_PER_IP", address_bucket(who), None, f"from {who}")


def sign_in_wait(email: str) -> int | None:
    """Count one admin sign-in attempt from this client address and for this email; the seconds
    to wait when either is over its limit (``SIGN_IN_LIMIT_PER_ADDRESS``, ``SIGN_IN_LIMIT_PER_ACCOUNT``),
    else ``None``. Password guessing then costs a minute per few tries, from one address or
    spread over many; the email is hashed like an address, so Redis never holds it."""
    waits = []
    per_address = int(current_app.config.get("SIGN_IN_LIMIT_PER_ADDRESS") or 0)
    if per_address > 0:
        waits.append(limiter().hit("signin-" + address_bucket(client_address()), per_address))
    per_account = int(current_app.config.get("SIGN_IN_LIMIT_PER_ACCOUNT") or 0)
    if per_account > 0:
        account = _keyed_hash(str(current_app.config.get("SECRET_KEY") or ""), "email:" + (email or "").strip().lower())
        waits.append(limiter().hit("signin-" + account, per_account))
    found = [w for w in waits if w is not None]
    return max(found) if found else None


#: the longest value each query parameter of the API may have (the same as docs/api.md and /api/v1/openapi.json);
#: any other parameter: QUERY_VALUE_MAX. Numbers (limit, offset, after) are range-checked by their endpoints.
QUERY_MAX = {"key": 128, "visitor": 128, "slot": 64, "product": 200, "email": 320, "customer_id": 200, "segment": 64,
             "limit": 20, "offset": 20, "after": 20, "strategy": 32, "cart": 4096, "lang": 16}
QUERY_VALUE_MAX = 512
QUERY_PARAMS_MAX = 20


def check_query() -> None:
    """Before every API request: no more than QUERY_PARAMS_MAX parameters, none longer than its maximum (400 naming it)."""
    if not request.path.startswith("/api/") or not request.query_string:
        return
    from .api.errors import ApiError

    args = request.args
    if len(args) > QUERY_PARAMS_MAX:
        raise ApiError(400, "invalid", f"at most {QUERY_PARAMS_MAX} query parameters", "query")
    for name, value in args.items(multi=True):
        most = QUERY_MAX.get(name, QUERY_VALUE_MAX)
        if len(value) > most:
            raise ApiError(400, "too_long", f"is longer than {most} characters", name[:100])


def check_site(site_id: int, secret: bool) -> None:
    """Once a key has opened a site: the per-site (public key) or per-secret-key limit."""
    if secret:
        _check("RATE_LIMIT_PER_SECRET_KEY", f"sk:{site_id}", "Authorization", "with this secret key")
    else:
        _check("RATE_LIMIT_PER_SITE", f"pk:{site_id}", "key", "for this site")


class ChunkedBodyLimit:
    """WSGI middleware: a body sent without ``Content-Length`` (chunked) is read up to ``MAX_CONTENT_LENGTH`` + 1 bytes.

    werkzeug alone would hand the app such a body cut off at the limit, without an
    error (a truncated JSON document, answered 400). Here the body is buffered and
    given a length, or, when longer than the limit, marked so the request gets 413.
    Requests with a ``Content-Length`` pass untouched (werkzeug checks those).
    """

    def __init__(self, wsgi_app, app: Flask):
        self.wsgi_app, self.app = wsgi_app, app

    def __call__(self, environ, start_response):
        most = self.app.config.get("MAX_CONTENT_LENGTH")
        if most and not environ.get("CONTENT_LENGTH") and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            import io

            stream, parts, size = environ["wsgi.input"], [], 0
            while size <= most:
                piece = stream.read(most + 1 - size)
                if not piece:
                    break
                parts.append(piece)
                size += len(piece)
            if size > most:
                environ["personalize.body_too_large"] = True
                parts = []
            data = b"".join(parts)
            environ["wsgi.input"] = io.BytesIO(data)
            environ["CONTENT_LENGTH"] = str(len(data))
        return self.wsgi_app(environ, start_response)


def _refuse_oversized_chunked_body() -> None:
    if request.environ.get("personalize.body_too_large"):
        from werkzeug.exceptions import RequestEntityTooLarge

        raise RequestEntityTooLarge()


def _before_request() -> None:
    """Every request's checks in one hook (one call instead of three on the widget's hot path):
    an oversized chunked body, then, on ``/api/``, the per-address limit and the query's size."""
    environ = request.environ
    if environ.get("personalize.body_too_large"):
        _refuse_oversized_chunked_body()
    if not environ.get("PATH_INFO", "").startswith("/api/"):
        return
    if current_app.config.get("RATE_LIMIT_PER_IP"):
        check_address()
    if environ.get("QUERY_STRING"):
        check_query()


def _bounded_int_converter():
    from werkzeug.routing import IntegerConverter

    class BoundedInt(IntegerConverter):
        """``<int:…>`` in every route: at most 2**31 - 1 (the ids of every table), so a 30-digit id is a 404,
        not a number the database cannot take (OverflowError on SQLite, out of range on PostgreSQL: a 500)."""

        # 0 … 2147483647 in the pattern itself: a larger number then matches no route, so every method gets
        # the 404 (rejected only in to_python, a DELETE or PATCH would get a 405 naming the route's other methods)
        regex = (r"(?:\d{1,9}|1\d{9}|20\d{8}|21[0-3]\d{7}|214[0-6]\d{6}|2147[0-3]\d{5}|21474[0-7]\d{4}"
                 r"|214748[0-2]\d{3}|2147483[0-5]\d{2}|21474836[0-3]\d|214748364[0-7])")

        def __init__(self, url_map, fixed_digits=0, min=None, max=2**31 - 1, signed=False):  # noqa: A002
            super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)

    return BoundedInt


def init_app(app: Flask) -> None:
    """Call before any blueprint is registered (the bounded ``int`` converter applies to routes added later)."""
    app.url_map.converters["int"] = _bounded_int_converter()
    app.extensions["personalize.limits"] = Limiter(app.config.get("REDIS_URL") or None)
    app.wsgi_app = ChunkedBodyLimit(app.wsgi_app, app)
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
    app.before_request(_before_request)

    from werkzeug.exceptions import RequestEntityTooLarge

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc):
        # with or without Content-Length: werkzeug stops reading at MAX_CONTENT_LENGTH (chunked bodies too)
        if not request.path.startswith("/api/"):
            return "The request is too large.", 413
        from .api.errors import error_response

        most = int(current_app.config.get("MAX_CONTENT_LENGTH") or 0)
        return error_response(413, "too_large", f"the request body is larger than {most} bytes (MAX_CONTENT_LENGTH)", "body")
