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

Sleeping and the clock are injectable, so tests run the retry logic without waiting.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import random
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests

from ..connectors import AuthError, StreamError, TransientError
from .secrets import HIDDEN, redact

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = "personalize-sync"


class HttpStatusError(StreamError):
    """An answer outside 2xx that retrying will not fix; ``status`` and ``body`` say what came."""

    def __init__(self, message: str, status: int, body: str = ""):
        super().__init__(message)
        self.status, self.body = status, body


class RetryLater(Exception):
    """Raised by a ``check`` function for a 2xx that is really "slow down" (e.g. a throttled GraphQL call)."""

    def __init__(self, reason: str, after: float | None = None):
        super().__init__(reason)
        self.after = after


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


def _snippet(response: requests.Response, limit: int = 300) -> str:
    text = (response.text or "").strip().replace("\n", " ")
    return hide_credentials(text, response.request)[:limit]


class HttpClient:
    """A ``requests`` session with the house rules for timeouts, retries and errors.

    :param base_url: prefixed to relative paths.
    :param headers: sent with every request (credentials go here or in ``auth``).
    :param timeout: seconds to connect and to read.
    :param max_retries: retries of one request before giving up.
    :param backoff: first wait in seconds; doubles each retry, up to ``max_backoff``.
    :param max_wait: total seconds one request may spend waiting for retries.
    :param min_interval: least seconds between two requests (a provider's rate budget).
    :param sleep: the sleep function (tests pass one that only records).
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
        session: requests.Session | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
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
        """A client sharing this one's retry policy, sleep and clock, with other base URL/headers/auth."""
        options = {
            "timeout": self.timeout, "max_retries": self.max_retries, "backoff": self.backoff,
            "max_backoff": self.max_backoff, "max_wait": self.max_wait, "min_interval": self.min_interval,
            "sleep": self.sleep, "clock": self.clock,
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
    ) -> requests.Response:
        """Send one request with retries; return the 2xx (or ``allow``-ed) response."""
        url = self.url(path)
        path = hide_credentials(path)  # as it appears in messages
        waited = 0.0
        attempt = 0
        while True:
            wait: float | None = None
            reason = ""
            self._pace()
            try:
                self.requests_sent += 1
                response = self.session.request(method, url, params=params, json=json, data=data, headers=headers, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                reason = f"{method} {path}: {type(exc).__name__}"
            else:
                status = response.status_code
                if status in allow:
                    return response
                if status in (401, 403):
                    raise AuthError(f"{method} {path} was refused with {status}: {_snippet(response)}")
                if status in RETRY_STATUSES:
                    reason = f"{method} {path}: {status} {_snippet(response, 120)}"
                    wait = retry_after_seconds(response.headers.get("Retry-After"))
                elif not 200 <= status < 300:
                    raise HttpStatusError(f"{method} {path}: {status} {_snippet(response)}", status, response.text or "")
                else:
                    if check is None:
                        return response
                    try:
                        check(response)
                        return response
                    except RetryLater as exc:
                        reason, wait = f"{method} {path}: {exc}", exc.after
            attempt += 1
            if wait is None:
                wait = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
                wait = wait / 2 + random.uniform(0, wait / 2)  # jitter: clients retrying together spread out
            if attempt > self.max_retries or waited + wait > self.max_wait:
                raise TransientError(f"gave up after {attempt} attempts ({waited:.0f} s waited): {reason}")
            self.sleep(wait)
            waited += wait

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


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        url = hide_credentials(response.url, response.request)
        raise StreamError(f"{response.request.method} {url}: the answer is not JSON: {_snippet(response, 120)}") from None


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
