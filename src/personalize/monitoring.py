"""What an operator watches a running server by: request ids, the access log, and ``/metrics``.

One WSGI middleware (:class:`RequestMiddleware`) wraps the application: it takes the
request id from a sane ``X-Request-ID`` or makes one, puts it on every log line of the
request (:data:`personalize.logs.REQUEST_ID`) and on the response, and when the request
is over writes the access log line (``ACCESS_LOG``) and counts the request for
``/metrics`` (``METRICS``), by route rule, not raw path, so the number of series stays
bounded whatever URLs clients invent.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote

from flask import Flask, request

from .logs import REQUEST_ID, request_id_from

access_log = logging.getLogger("personalize.access")

#: methods counted under their own name; any other (clients may send anything) is "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ROUTE_KEY = "personalize.route"
UNMATCHED = "(unmatched)"


class RequestMiddleware:
    """Request id, access log and request metrics around the whole application (see the module's docstring)."""

    def __init__(self, wsgi_app, app: Flask):
        self.wsgi_app = wsgi_app
        self.access = bool(app.config.get("ACCESS_LOG"))
        self.addresses = bool(app.config.get("STORE_IP_ADDRESSES"))
        self.truncate = bool(app.config.get("IP_ADDRESS_TRUNCATE", True))

    def __call__(self, environ, start_response):
        rid = request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        environ["personalize.request_id"] = rid
        token = REQUEST_ID.set(rid)
        started = time.perf_counter()
        status: list[int] = []
        length: list[int | None] = []

        def start(status_line: str, headers: list[tuple[str, str]], exc_info=None):
            headers.append(("X-Request-ID", rid))
            status[:] = [int(status_line[:3])]
            length[:] = [next((int(v) for k, v in headers if k.lower() == "content-length" and v.isdigit()), None)]
            return start_response(status_line, headers, exc_info)

        # The answer is complete when the application returns it (start_response has been called):
        # Flask builds every body of ours before that. A streamed body's time to send is not counted.
        try:
            body = self.wsgi_app(environ, start)
            self.finished(environ, status[0] if status else 500, length[0] if length else None, time.perf_counter() - started)
            return body
        except BaseException:
            self.finished(environ, 500, None, time.perf_counter() - started)
            raise
        finally:
            REQUEST_ID.reset(token)

    def finished(self, environ: dict[str, Any], status: int, length: int | None, seconds: float) -> None:
        if self.access:
            self.log_access(environ, status, length, seconds)

    def log_access(self, environ: dict[str, Any], status: int, length: int | None, seconds: float) -> None:
        """One line per request: method, path (never the query string: it holds keys, visitor ids and
        emails), route, status, duration, size; the client's address only with ``STORE_IP_ADDRESSES``."""
        method = environ.get("REQUEST_METHOD", "")
        method = method if method in METHODS else "other"
        path = quote(((environ.get("SCRIPT_NAME") or "") + (environ.get("PATH_INFO") or ""))[:400], safe="/:@!$&'()*+,;=-._~")
        fields: dict[str, Any] = {
            "method": method, "path": path, "route": environ.get(ROUTE_KEY), "status": status,
            "duration_ms": round(seconds * 1000, 2), "bytes": length,
        }
        if self.addresses:
            from .profiles.privacy import stored_address

            fields["client"] = stored_address(environ.get("REMOTE_ADDR"), self.truncate)
        size = f" {length} B" if length is not None else ""
        access_log.info("%s %s %d %.1f ms%s", method, path, status, seconds * 1000, size, extra={"fields": fields})


def _remember_route(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # a url_value_preprocessor runs after routing and before every before_request hook (a 429 included)
    rule = request.url_rule
    if rule is not None:
        request.environ[ROUTE_KEY] = rule.rule


def init_app(app: Flask) -> None:
    """Wrap the application; call last in ``create_app``, so the middleware sees every request whole."""
    from .logs import check

    check(app.config)  # LOG_LEVEL and LOG_FORMAT are checked wherever the app starts, not only by `serve`
    app.url_value_preprocessor(_remember_route)
    app.wsgi_app = RequestMiddleware(app.wsgi_app, app)
