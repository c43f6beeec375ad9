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
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, current_app, request

from . import metrics
from .logs import REQUEST_ID, request_id_from
from .validation import whole_number

access_log = logging.getLogger("personalize.access")
log = logging.getLogger(__name__)

HTTP_REQUESTS = metrics.counter("personalize_http_requests_total", "HTTP requests answered, by route rule (not the raw path), "
                                "method and status class.", ["route", "method", "status"])
HTTP_SECONDS = metrics.histogram("personalize_http_request_duration_seconds", "Time until each answer was ready, by route rule "
                                 "and status class.", ["route", "status"])
MODES = ("off", "token")
#: the shortest METRICS_TOKEN accepted
TOKEN_MIN = 16

#: methods counted under their own name; any other (clients may send anything) is "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ROUTE_KEY = "personalize.route"
UNMATCHED = "(unmatched)"


class RequestMiddleware:
    """Request id, access log and request metrics around the whole application (see the module's docstring)."""

    def __init__(self, wsgi_app, app: Flask):
        self.wsgi_app = wsgi_app
        self.access = bool(app.config.get("ACCESS_LOG"))
        self.publisher: metrics.Publisher | None = app.extensions.get("personalize.metrics")
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
            length[:] = [next((whole_number(v) for k, v in headers if k.lower() == "content-length" and whole_number(v) is not None), None)]
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
        if self.publisher is not None:
            route = environ.get(ROUTE_KEY) or UNMATCHED
            method = environ.get("REQUEST_METHOD", "")
            status_class = f"{status // 100}xx"
            HTTP_REQUESTS.add((route, method if method in METHODS else "other", status_class))
            HTTP_SECONDS.add((route, status_class), seconds)
            self.publisher.ensure_running()
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


# -- /metrics ---------------------------------------------------------------------------------------

def metrics_mode(config: Any) -> str:
    """``off`` or ``token``; a :class:`ConfigError` for another value, or ``token`` without a good METRICS_TOKEN."""
    from .config import ConfigError

    mode = str(config.get("METRICS") or "off").strip().lower()
    if mode not in MODES:
        raise ConfigError(f"METRICS must be off or token, got {config.get('METRICS')!r}")
    if mode == "token" and len(str(config.get("METRICS_TOKEN") or "")) < TOKEN_MIN:
        raise ConfigError(f"METRICS=token needs METRICS_TOKEN, at least {TOKEN_MIN} characters "
                          "(python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return mode


def make_publisher(app: Flask) -> metrics.Publisher:
    """Publishing to Redis when REDIS_URL is set (every machine adds up), else to the instance folder (this machine)."""
    url = app.config.get("REDIS_URL")
    if url:  # under the installation's queue name: installations sharing one Redis keep their figures apart
        return metrics.Publisher(metrics.RedisStore(url, f"personalize:metrics:{app.config.get('QUEUE_NAME') or 'personalize'}:"))
    return metrics.Publisher(metrics.FileStore(Path(app.instance_path) / "metrics"))


def start_publishing(app: Flask) -> None:
    """Publish this process's figures from now on (a server or worker process that has just started)."""
    publisher = app.extensions.get("personalize.metrics")
    if publisher is not None:
        publisher.ensure_running()


_broker_depth: dict[tuple[str, str], tuple[float, float | None]] = {}


def broker_queue_depth(app: Flask, max_age: float = 5.0) -> float | None:
    """Messages waiting in the broker's job queue (None without a broker, or when it does not answer); cached briefly."""
    url, queue = app.config.get("BROKER_URL"), app.config.get("QUEUE_NAME") or "personalize"
    if not url:
        return None
    now = time.monotonic()
    cached = _broker_depth.get((url, queue))
    if cached and now - cached[0] < max_age:
        return cached[1]
    depth = None
    try:
        from kombu import Connection

        with Connection(url, connect_timeout=1.0) as connection:
            connection.ensure_connection(max_retries=1, timeout=1.0)
            depth = float(connection.default_channel.queue_declare(queue=queue, passive=True).message_count)
    except Exception as exc:  # a scrape reports what it can; the readiness check says why the broker is down
        log.debug("metrics: queue %s not readable: %s", queue, exc)
    _broker_depth[(url, queue)] = (now, depth)
    return depth


def metrics_view():
    import hmac

    sent = request.headers.get("Authorization", "")
    scheme, _, token = sent.partition(" ")
    wanted = str(current_app.config.get("METRICS_TOKEN") or "")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), wanted.encode()):
        return Response("send the METRICS_TOKEN setting as Authorization: Bearer <token>\n", 401,
                        {"WWW-Authenticate": 'Bearer realm="metrics"', "Content-Type": "text/plain; charset=utf-8"})
    publisher: metrics.Publisher = current_app.extensions["personalize.metrics"]
    try:
        publisher.ensure_running()
        publisher.publish()  # this process's newest figures; the others' are at most PUBLISH_SECONDS old
        meta, values, live = publisher.store.collect()
    except (metrics.StoreUnavailable, OSError) as exc:
        log.warning("metrics: the shared figures cannot be read: %s", exc)
        return Response("the metrics store cannot be read; see the server's log\n", 503,
                        {"Content-Type": "text/plain; charset=utf-8", "Retry-After": "5"})
    meta["personalize_build_info"] = ["gauge", "The running version (always 1)."]
    values["personalize_build_info"] = {metrics.sample("personalize_build_info", ["version"], [current_app.config["VERSION"]]): 1}
    meta["personalize_metrics_processes"] = ["gauge", "Processes whose figures were published in the last "
                                             f"{metrics.LIVE_SECONDS:.0f} s (web and worker processes alive)."]
    values["personalize_metrics_processes"] = {"personalize_metrics_processes": live}
    meta["personalize_queue_messages"] = ["gauge", "Jobs waiting in the broker's queue (with BROKER_URL)."]
    depth = broker_queue_depth(current_app)
    queue = current_app.config.get("QUEUE_NAME") or "personalize"
    values["personalize_queue_messages"] = {} if depth is None else {metrics.sample("personalize_queue_messages", ["queue"], [queue]): depth}
    return Response(metrics.render(meta, values), 200, {"Content-Type": metrics.CONTENT_TYPE, "Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    """Wrap the application; call last in ``create_app``, so the middleware sees every request whole."""
    from .logs import check

    check(app.config)  # LOG_LEVEL and LOG_FORMAT are checked wherever the app starts, not only by `serve`
    if metrics_mode(app.config) != "off":
        app.extensions["personalize.metrics"] = make_publisher(app)
        app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])  # without METRICS: no route, a 404
    if "personalize.metrics" in app.extensions or app.config.get("ACCESS_LOG"):
        app.url_value_preprocessor(_remember_route)  # only what needs the route pays for it
    app.wsgi_app = RequestMiddleware(app.wsgi_app, app)
