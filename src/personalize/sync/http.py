"""The one HTTP client every connector shares.

It classifies answers once, for every provider:

- 401 and 403 raise :class:`~personalize.connectors.AuthError` (stop, tell the admin);
- 408, 429, 5xx, timeouts and dropped connections are retried with exponential
  backoff and jitter, honouring ``Retry-After``, until the wait budget is spent,
  then raise :class:`~personalize.connectors.TransientError` (the run checkpoints
  and is tried again later);
- any other 4xx raises :class:`HttpStatusError` (a :class:`StreamError`: that stream fails);
- a 2xx whose body says it is an error is turned into one by the caller's
  ``check`` function, which may also ask for a retry by raising :class:`RetryLater`.

It is also the guard of every request the server makes (:mod:`.outbound`): each
client carries an :class:`~.outbound.OutboundPolicy` that is checked by name
before a request leaves and by address when a connection opens, redirects to
another host are never followed, ``.netrc`` files and proxy variables of the
environment are ignored. Error messages name the status and its standard
reason phrase, never the remote body: an answer is not repeated to the admin
(the body, with the credentials hidden, stays on :class:`HttpStatusError` and
in the server log at INFO).

Every answer is bounded twice. ``deadline`` (default 300 s) is the time one call of
:meth:`HttpClient.request` may take in all: connecting, sending, waiting, reading the
body, following redirects and sleeping between retries. A read timeout alone does not
bound a server that sends one byte every few seconds, so one watchdog thread of the
process (:class:`_Watchdog`, shared by every client) shuts the socket of a call that
passes its deadline; the call then raises :class:`~personalize.connectors.TransientError`.
``max_bytes`` (default 32 MB) bounds the body, counted after decompression as it arrives
(a small gzip may unpack to gigabytes): a longer 2xx answer raises :class:`ResponseTooLarge`
naming the address and the limit; a longer answer of another status is cut there and
handled by its status as usual (only its start is ever shown, in the server log).

Sleeping and the clock are injectable, so tests run the retry logic without waiting.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import http
import logging
import math
import os
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import parse_url
from urllib3.util.connection import allowed_gai_family
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from ..connectors import (
    ConfigError,
    HttpAuthError,
    HttpStatusError,
    RetryLater,
    StreamError,
    TransientError,
)
from ..validation import whole_number
from .outbound import DEFAULT_PORTS, OutboundPolicy, OutboundRefused, normal_host
from .secrets import HIDDEN, redact

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = "personalize-sync"
#: redirects followed for one read (GET/HEAD), and only within the same scheme, host and port
MAX_REDIRECTS = 3
#: characters of a remote body kept on an error for the server log
BODY_KEPT = 2000
#: seconds one call of :meth:`HttpClient.request` may take in all (connect, answer, body, redirects, retries)
DEFAULT_DEADLINE = 300.0
#: bytes of one answer's body, counted after decompression
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
#: bytes read (and decompressed) at a time
CHUNK_BYTES = 64 * 1024
_CLIENTS = object()  # request(): "the client's own limit"


class ResponseTooLarge(StreamError):
    """A 2xx answer longer than the client's ``max_bytes`` (counted as it arrives, after decompression)."""

    def __init__(self, message: str, status: int = 0, limit: int = 0):
        super().__init__(message)
        self.status, self.limit = status, limit


class DeadlineExceeded(TransientError):
    """A call that did not end within its ``deadline`` (a slow or dripping answer): tried again later."""

    def __init__(self, message: str, deadline: float = 0.0):
        super().__init__(message)
        self.deadline = deadline


class RedirectRefused(ConfigError):
    """An answer that redirects somewhere the client does not follow (another host, a write, too many)."""



def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


#: request headers that carry no credential; every other header's value is kept out of messages
PLAIN_HEADERS = frozenset({
    "user-agent", "accept", "accept-encoding", "accept-language", "connection", "content-type", "content-length", "host",
})
#: query parameters whose values are credentials (``?api_key=…``, ``&access_token=…``)
_SECRET_PARAM = re.compile(r"(?i)([?&;][\w.-]*(?:key|token|secret|password|passwd|signature|auth|sig)[\w.-]*=)[^&#\s\"']*")


def credentials_sent(request: Any) -> list[str]:
    """The credential values one request carried: header values (and the user and password
    inside a Basic header), so an error built from the answer can leave them out."""
    values: list[str] = []
    for name, value in (getattr(request, "headers", None) or {}).items():
        if name.lower() in PLAIN_HEADERS or not isinstance(value, str):
            continue
        values.append(value)
        scheme, _, rest = value.partition(" ")
        if rest:
            values.append(rest.strip())
            if scheme.lower() == "basic":
                with contextlib.suppress(ValueError):
                    values.extend(base64.b64decode(rest.strip()).decode("utf-8", "replace").split(":", 1))
    return values


def hide_credentials(text: str, request: Any = None) -> str:
    """``text`` without the credentials ``request`` carried and without secret query parameters."""
    text = redact(text, credentials_sent(request)) if request is not None else text
    return _SECRET_PARAM.sub(lambda m: m.group(1) + HIDDEN, text)


def status_text(status: int) -> str:
    """``401 Unauthorized``: the status with its standard reason phrase (the server's own phrase is
    not repeated: like the body, it is the remote side's text)."""
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def kept_body(response: requests.Response) -> str:
    """The start of an answer's body with the credentials the request carried hidden: for logs only."""
    try:
        text = response.text or ""
    except Exception:  # an undecodable body is no reason to lose the error
        return ""
    return hide_credentials(text[:BODY_KEPT], response.request)


def _log_answer(method: str, path: str, response: requests.Response) -> None:
    log.info("%s %s answered %s: %s", method, path, status_text(response.status_code), kept_body(response).replace("\n", " ")[:500])


# --- the deadline: one watchdog thread per process shuts the sockets of calls that overrun ---


class _Exchange:
    """One call of :meth:`HttpClient.request`: when it must end and the sockets it used (the sockets,
    not the connections: a connection hands its socket to the answer when the server closes after it)."""

    __slots__ = ("ends", "expired", "seconds", "socks")

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self.expired = False
        self.socks: list[socket.socket] = []

    def attach(self, sock: socket.socket | None) -> None:
        """The calling thread is about to use ``sock`` for this call."""
        if sock is None:
            return
        self.socks.append(sock)
        if self.expired:
            self._shut(sock)

    def expire(self) -> None:
        """The watchdog's thread: the call is over its deadline; whatever it is blocked on returns."""
        self.expired = True
        for sock in list(self.socks):
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        # the plain socket's shutdown, also under TLS: a read blocked in another thread returns at once
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread for the whole process, not one per request: it sleeps until the earliest
    deadline of the calls in flight (or a minute, when that is later) and expires what is due.
    A call costs a dict insert and delete under a lock; the thread is woken only by a call whose
    deadline is earlier than the time it already means to wake at."""

    IDLE = 60.0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active: dict[_Exchange, None] = {}
        self._wake_at = -math.inf
        self._thread: threading.Thread | None = None

    def watch(self, exchange: _Exchange) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="http-deadlines", daemon=True)
                self._thread.start()
            self._active[exchange] = None
            if exchange.ends < self._wake_at:
                self._cond.notify()

    def forget(self, exchange: _Exchange) -> None:
        with self._cond:
            self._active.pop(exchange, None)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                wake = now + self.IDLE
                for exchange in list(self._active):
                    if exchange.ends <= now:
                        del self._active[exchange]
                        exchange.expire()
                    elif exchange.ends < wake:
                        wake = exchange.ends
                self._wake_at = wake
                self._cond.wait(wake - now)


_WATCHDOG = _Watchdog()
_current = threading.local()  # the exchange the calling thread's connections belong to


def _after_fork() -> None:  # a forked child has the object but not the thread
    global _WATCHDOG
    _WATCHDOG = _Watchdog()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


# --- the guard: a session whose connections are checked by name and by address ---


class _CheckedConnection:
    """Mixed into urllib3's connections: resolve the host, check every address, connect to a checked one.

    TLS still verifies the certificate against the host name (``self.host``), not the address.
    """

    policy: OutboundPolicy

    def _new_conn(self) -> socket.socket:
        host = self._dns_host.strip("[]")  # type: ignore[attr-defined]
        port = self.port  # type: ignore[attr-defined]
        try:
            found = socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[attr-defined,arg-type]
        self.policy.check_addresses(host, port, [sockaddr[0] for *_rest, sockaddr in found])
        error: OSError | None = None
        for family, socktype, proto, _name, sockaddr in found:  # the checked addresses, in the resolver's order
            sock = None
            try:
                sock = socket.socket(family, socktype, proto)
                for option in self.socket_options or ():  # type: ignore[attr-defined]
                    sock.setsockopt(*option)
                if self.timeout is not _DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                    sock.settimeout(self.timeout)  # type: ignore[attr-defined]
                if self.source_address:  # type: ignore[attr-defined]
                    sock.bind(self.source_address)  # type: ignore[attr-defined]
                sock.connect(sockaddr)
            except OSError as exc:
                error = exc
                if sock is not None:
                    sock.close()
                continue
            sys.audit("http.client.connect", self, self.host, self.port)  # type: ignore[attr-defined]
            exchange = getattr(_current, "exchange", None)
            if exchange is not None:
                if exchange.expired:  # the deadline passed while connecting
                    sock.close()
                    raise ConnectTimeoutError(self, f"Connection to {self.host}: the call's deadline passed")  # type: ignore[attr-defined]
                exchange.attach(sock)
            return sock
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})") from error  # type: ignore[attr-defined]
        raise NewConnectionError(self, f"Failed to establish a new connection: {error or 'no address'}") from error  # type: ignore[arg-type]

    def request(self, *args: Any, **kwargs: Any) -> Any:
        exchange = getattr(_current, "exchange", None)
        if exchange is not None:  # a kept-alive connection: the watchdog may shut its socket when the call overruns
            exchange.attach(getattr(self, "sock", None))
        return super().request(*args, **kwargs)  # type: ignore[misc]


class GuardedAdapter(HTTPAdapter):
    """A ``requests`` adapter that checks each request's address by name and each connection's by address."""

    def __init__(self, policy: OutboundPolicy, **kwargs: Any):
        self.policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        policy = self.policy

        class Connection(_CheckedConnection, HTTPConnection):
            pass

        class TLSConnection(_CheckedConnection, HTTPSConnection):
            pass

        class Pool(HTTPConnectionPool):
            ConnectionCls = Connection

        class TLSPool(HTTPSConnectionPool):
            ConnectionCls = TLSConnection

        Connection.policy = TLSConnection.policy = policy
        self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": TLSPool}

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise OutboundRefused("requests through a proxy variable are not sent; name the proxy in the connection's API address instead")

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.policy.check_url(request.url or "")
        return super().send(request, *args, **kwargs)


class GuardedSession(requests.Session):
    """A session that never follows a redirect by itself and ignores ``.netrc`` and proxy variables."""

    def __init__(self, policy: OutboundPolicy):
        super().__init__()
        self.trust_env = False
        adapter = GuardedAdapter(policy)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        return None


def same_origin(a: str, b: str) -> bool:
    """Same scheme, host and port."""
    pa, pb = parse_url(a), parse_url(b)
    if (pa.scheme or "").lower() != (pb.scheme or "").lower():
        return False
    try:
        hosts = normal_host(pa.host or "") == normal_host(pb.host or "")
    except OutboundRefused:
        return False
    scheme = (pa.scheme or "").lower()
    return hosts and (pa.port or DEFAULT_PORTS.get(scheme)) == (pb.port or DEFAULT_PORTS.get(scheme))


class HttpClient:
    """A ``requests`` session with the house rules for timeouts, retries and errors.

    :param base_url: prefixed to relative paths.
    :param headers: sent with every request (credentials go here or in ``auth``).
    :param timeout: seconds to connect and to read (each read: a server that keeps sending a
        little is bounded by ``deadline`` only).
    :param max_retries: retries of one request before giving up.
    :param backoff: first wait in seconds; doubles each retry, up to ``max_backoff``.
    :param max_wait: total seconds one request may spend waiting for retries.
    :param min_interval: least seconds between two requests (a provider's rate budget).
    :param sleep: the sleep function (tests pass one that only records).
    :param policy: where requests may go (:class:`~.outbound.OutboundPolicy`); default: public hosts
        over https only. The sync engine passes the connector's hosts and the server's trusted ones.
    :param deadline: seconds one call of :meth:`request` may take in all, retries and their waits
        included (default 300); past it the call raises :class:`DeadlineExceeded`, a
        ``TransientError``. ``None``: no deadline.
    :param max_bytes: bytes of an answer's body, counted after decompression as it arrives
        (default 32 MB); a longer 2xx answer raises :class:`ResponseTooLarge`, a longer answer of
        another status is cut. ``None``: no limit. A connector downloading big files (an export,
        a bulk JSONL) passes a larger one, for the client or for one request.
    """

    def __init__(
        self,
        base_url: str = "",
        *,
        headers: dict[str, str] | None = None,
        auth: Any = None,
        timeout: float | tuple[float, float] = (10.0, 60.0),
        max_retries: int = 6,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_wait: float = 300.0,
        min_interval: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        policy: OutboundPolicy | None = None,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        deadline: float | None = DEFAULT_DEADLINE,
    ):
        _check_bounds(max_bytes, deadline)
        self.max_bytes = max_bytes
        self.deadline = deadline
        self.base_url = base_url.rstrip("/")
        self.policy = policy or OutboundPolicy()
        self.session = GuardedSession(self.policy)
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers.update(headers or {})
        self.session.auth = auth
        self.timeout = timeout
        self.max_retries, self.backoff, self.max_backoff, self.max_wait = max_retries, backoff, max_backoff, max_wait
        self.min_interval = min_interval
        self.sleep, self.clock = sleep, clock
        self._last_request = -1e18
        self.requests_sent = 0

    def with_options(self, **changes: Any) -> HttpClient:
        """A client sharing this one's retry policy, sleep, clock, bounds and outbound policy, with other
        base URL/headers/auth (or bounds). The outbound policy is the server's: it cannot be changed here."""
        if "policy" in changes:
            raise TypeError("the outbound policy of a client is set by the server, not by a connector")
        options = {
            "timeout": self.timeout, "max_retries": self.max_retries, "backoff": self.backoff,
            "max_backoff": self.max_backoff, "max_wait": self.max_wait, "min_interval": self.min_interval,
            "sleep": self.sleep, "clock": self.clock, "policy": self.policy, "max_bytes": self.max_bytes,
            "deadline": self.deadline,
        }
        options.update(changes)
        return HttpClient(**options)

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        check: Callable[[requests.Response], None] | None = None,
        allow: tuple[int, ...] = (),
        max_bytes: Any = _CLIENTS,
        deadline: Any = _CLIENTS,
    ) -> requests.Response:
        """Send one request with retries; return the 2xx (or ``allow``-ed) response.

        ``max_bytes`` and ``deadline`` replace the client's for this call (a big export download).
        Raises :class:`~.outbound.OutboundRefused` (a ``ConfigError``) when the outbound policy
        refuses the address, :class:`RedirectRefused` for a redirect it does not follow,
        :class:`ResponseTooLarge` for a 2xx answer over ``max_bytes`` and :class:`DeadlineExceeded`
        when the call passes its ``deadline``.
        """
        limit = self.max_bytes if max_bytes is _CLIENTS else max_bytes
        seconds = self.deadline if deadline is _CLIENTS else deadline
        if max_bytes is not _CLIENTS or deadline is not _CLIENTS:
            _check_bounds(limit, seconds)
        url = self.url(path)
        path = hide_credentials(path)  # as it appears in messages
        if seconds is None:
            return self._request(method, url, path, None, limit, params, json, data, headers, check, allow)
        exchange = _Exchange(seconds)
        _current.exchange = exchange
        watchdog = _WATCHDOG
        watchdog.watch(exchange)
        try:
            response = self._request(method, url, path, exchange, limit, params, json, data, headers, check, allow)
            if exchange.expired:  # a body without a length ends where the watchdog shut the socket: not an answer
                response.close()
                raise self._overrun(method, url, seconds)
            return response
        except Exception as exc:
            if exchange.expired and not isinstance(exc, DeadlineExceeded):
                raise self._overrun(method, url, seconds) from None
            raise
        finally:
            watchdog.forget(exchange)
            _current.exchange = None

    def _overrun(self, method: str, url: str, seconds: float) -> DeadlineExceeded:
        shown = hide_credentials(url)
        return DeadlineExceeded(f"{method} {shown}: no complete answer within {seconds:g} s (the call's deadline)", seconds)

    def _request(self, method: str, url: str, path: str, exchange: _Exchange | None, limit: int | None, params: Any, json: Any,
                 data: Any, headers: Any, check: Any, allow: tuple[int, ...]) -> requests.Response:
        waited = 0.0
        attempt = 0
        while True:
            wait: float | None = None
            reason = ""
            self._pace()
            try:
                self.requests_sent += 1
                response = self._send(method, url, path, limit, params=params, json=json, data=data, headers=headers)
            except OutboundRefused as exc:
                raise OutboundRefused(f"{method} {path}: {exc}") from None
            except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                reason = f"{method} {path}: {type(exc).__name__}"
            else:
                status = response.status_code
                if status in allow:
                    return response
                if status in (401, 403):
                    _log_answer(method, path, response)
                    raise HttpAuthError(f"{method} {path} was refused with {status_text(status)}", status, kept_body(response))
                if status in RETRY_STATUSES:
                    _log_answer(method, path, response)
                    reason = f"{method} {path}: {status_text(status)}"
                    wait = retry_after_seconds(response.headers.get("Retry-After"))
                elif not 200 <= status < 300:
                    _log_answer(method, path, response)
                    raise HttpStatusError(f"{method} {path}: {status_text(status)}", status, kept_body(response))
                else:
                    if check is None:
                        return response
                    try:
                        check(response)
                        return response
                    except RetryLater as exc:
                        reason, wait = f"{method} {path}: {exc}", exc.after
            if exchange is not None and exchange.expired:
                raise self._overrun(method, url, exchange.seconds)
            attempt += 1
            if wait is None:
                wait = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
                wait = wait / 2 + random.uniform(0, wait / 2)  # jitter: clients retrying together spread out
            if attempt > self.max_retries or waited + wait > self.max_wait:
                raise TransientError(f"gave up after {attempt} attempts ({waited:.0f} s waited): {reason}")
            if exchange is not None and time.monotonic() + wait >= exchange.ends:
                raise TransientError(f"gave up after {attempt} attempts: waiting {wait:.0f} s more would pass the call's deadline: {reason}")
            self.sleep(wait)
            waited += wait

    def _send(self, method: str, url: str, shown: str, limit: int | None, **kwargs: Any) -> requests.Response:
        """One request, following a redirect only for a read and only within the same scheme, host and
        port (at most :data:`MAX_REDIRECTS`): the credentials it carries never go anywhere else."""
        stream = limit is not None
        response = self.session.request(method, url, timeout=self.timeout, allow_redirects=False, stream=stream, **kwargs)
        hops = 0
        while response.is_redirect:
            target = urljoin(response.url, response.headers.get("Location", ""))
            status = status_text(response.status_code)
            if method.upper() not in ("GET", "HEAD"):
                raise RedirectRefused(f"{method} {shown}: answered {status}; a redirect of a write is not followed")
            if not same_origin(target, response.url):
                log.info("%s %s: not following a redirect to %s", method, shown, hide_credentials(target))
                raise RedirectRefused(f"{method} {shown}: answered {status} to another address; redirects are only followed within the same host")
            if hops >= MAX_REDIRECTS:
                raise RedirectRefused(f"{method} {shown}: more than {MAX_REDIRECTS} redirects")
            hops += 1
            response.close()
            response = self.session.request(method, target, headers=kwargs.get("headers"), timeout=self.timeout, allow_redirects=False,
                                            stream=stream)
        return self._bounded(response, method, limit) if stream else response

    def _bounded(self, response: requests.Response, method: str, limit: int | None) -> requests.Response:
        """Read the body of a streamed answer up to ``limit`` bytes after decompression (a host may
        answer with gigabytes, or a small gzip that unpacks to them): a 2xx answer over it is refused,
        another is cut there (its status decides what happens; only its start is ever shown)."""
        limit = int(limit or 0)
        status = response.status_code
        refuse = 200 <= status < 300
        declared = whole_number((response.headers.get("Content-Length") or "").strip())
        chunks, size = [], 0
        try:
            if refuse and declared is not None and declared > limit:
                raise self._too_large(response, method, limit)
            for chunk in response.iter_content(CHUNK_BYTES):
                if size + len(chunk) > limit:
                    if refuse:
                        raise self._too_large(response, method, limit)
                    chunks.append(chunk[: limit - size])
                    size = limit
                    log.info("%s %s: the %s answer is longer than %s bytes; cut there", method,
                             hide_credentials(response.url, response.request), status, f"{limit:,}")
                    response.close()
                    break
                size += len(chunk)
                chunks.append(chunk)
        except BaseException:
            response.close()
            raise
        response._content = b"".join(chunks)
        response._content_consumed = True
        return response

    @staticmethod
    def _too_large(response: requests.Response, method: str, limit: int) -> ResponseTooLarge:
        url = hide_credentials(response.url, response.request)
        return ResponseTooLarge(f"{method} {url}: the answer is larger than the limit of {limit:,} bytes (max_bytes)",
                                response.status_code, limit)

    def _pace(self) -> None:
        if self.min_interval <= 0:
            return
        gap = self.clock() - self._last_request
        if gap < self.min_interval:
            self.sleep(self.min_interval - gap)
        self._last_request = self.clock()

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return _json(self.request("GET", path, **kwargs))

    def post_json(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        response = self.request("POST", path, json=body, **kwargs)
        return _json(response) if response.content else None


def _check_bounds(max_bytes: Any, deadline: Any) -> None:
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0):
        raise ValueError(f"max_bytes must be a whole number of bytes or None, not {max_bytes!r}")
    if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, int | float) or not deadline > 0):
        raise ValueError(f"deadline must be a positive number of seconds or None, not {deadline!r}")


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        url = hide_credentials(response.url, response.request)
        kind = (response.headers.get("Content-Type") or "").split(";")[0].strip()
        kind = kind if re.fullmatch(r"[\w.+-]{1,40}/[\w.+-]{1,60}", kind) else "unknown"
        log.info("%s %s: the answer is not JSON: %s", response.request.method, url, kept_body(response)[:500])
        raise StreamError(f"{response.request.method} {url}: the answer is not JSON (content type {kind})") from None


def paginate(fetch: Callable[[Any], tuple[list[Any], Any]], start: Any = None) -> Iterator[tuple[list[Any], Any]]:
    """Follow a cursor: ``fetch(cursor)`` returns ``(items, next_cursor)``; stops when ``next_cursor`` is None.

    Yields each page with the cursor that fetches the *next* page, so a caller can
    checkpoint between pages.
    """
    cursor = start
    while True:
        items, cursor = fetch(cursor)
        yield items, cursor
        if cursor is None:
            return


def paginate_offset(fetch: Callable[[int], tuple[list[Any], int]], page_size: int, start: int = 0) -> Iterator[tuple[list[Any], int]]:
    """Offset paging: ``fetch(offset)`` returns ``(items, total)``; yields ``(items, next_offset)``."""
    offset = start
    while True:
        items, total = fetch(offset)
        offset += len(items)
        yield items, offset
        if not items or offset >= total or len(items) < page_size:
            return
