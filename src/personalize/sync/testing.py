"""Testing connectors without the real service: a strict local provider server and
a conformance check every connector (first-party or not) can run.

A :class:`ProviderServer` answers only the routes a test declares, in the
provider's shapes; any other request is recorded as unexpected and fails
:meth:`ProviderServer.verify`, and so does a route marked ``required`` that never
got a request. Faults (429 with ``Retry-After``, 5xx, slow answers that time out,
a dropped connection) are queued per route with :meth:`ProviderServer.fault`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from .outbound import OutboundPolicy, parse_allowed_hosts

Handler = Callable[[Request, re.Match], Any]

#: what a test server's address needs in ``OUTBOUND_ALLOWED_HOSTS`` (``personalize.testing.app_config`` sets it)
LOCAL_TEST_HOSTS = "127.0.0.1"


def local_policy(provider_hosts: tuple[str, ...] = (), provider: str = "") -> OutboundPolicy:
    """The outbound policy of a server with ``OUTBOUND_ALLOWED_HOSTS=127.0.0.1``: for an ``HttpClient``
    a test builds itself to reach a :class:`ProviderServer` (which listens on 127.0.0.1)."""
    return OutboundPolicy(provider_hosts=provider_hosts, provider=provider, trusted=parse_allowed_hosts(LOCAL_TEST_HOSTS))


@dataclass
class Route:
    method: str
    pattern: re.Pattern
    handler: Handler
    required: bool
    hits: int = 0
    faults: list[dict[str, Any]] = field(default_factory=list)


class ProviderServer:
    """A threaded local HTTP server for one provider's API slice.

    ``handler(request, match)`` returns a :class:`Response`, a ``(status, json_body)``
    pair, a ``(status, json_body, headers)`` triple, or a JSON-able body for 200.
    """

    def __init__(self, check: Callable[[Request], None] | None = None):
        self.routes: list[Route] = []
        self.requests: list[tuple[str, str]] = []
        self.unexpected: list[str] = []
        self.failures: list[str] = []
        self.check = check
        self._lock = threading.Lock()
        self._server = None
        self.url = ""

    # -- declaring --

    def on(self, method: str, path: str, handler: Handler, required: bool = True) -> Route:
        """Answer ``method`` requests whose path matches the regular expression ``path`` (anchored)."""
        route = Route(method.upper(), re.compile(f"^{path}$"), handler, required)
        self.routes.append(route)
        return route

    def fault(self, method: str, path: str, status: int = 500, body: Any = None, headers: dict[str, str] | None = None,
              times: int = 1, delay: float = 0.0, drop: bool = False) -> None:
        """Make the next ``times`` matching requests fail: a status, a slow answer, or a dropped connection."""
        for route in self.routes:
            if route.method == method.upper() and route.pattern.pattern == f"^{path}$":
                route.faults.extend({"status": status, "body": body, "headers": headers or {}, "delay": delay, "drop": drop} for _ in range(times))
                return
        raise KeyError(f"no route {method} {path}; declare it with on() first")

    # -- running --

    def __enter__(self) -> ProviderServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def verify(self) -> None:
        """Raise AssertionError for unexpected requests, failed checks and required routes never called."""
        problems = [f"unexpected request {r}" for r in self.unexpected] + self.failures
        problems += [f"expected request never came: {r.method} {r.pattern.pattern}" for r in self.routes if r.required and r.hits == 0]
        if problems:
            raise AssertionError("; ".join(problems))

    def hits(self, method: str, path_prefix: str = "") -> int:
        return sum(1 for m, p in self.requests if m == method.upper() and p.startswith(path_prefix))

    # -- serving --

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        with self._lock:
            self.requests.append((request.method, request.path))
            for route in self.routes:
                match = route.pattern.match(request.path)
                if route.method == request.method and match:
                    route.hits += 1
                    fault = route.faults.pop(0) if route.faults else None
                    break
            else:
                self.unexpected.append(f"{request.method} {request.full_path}")
                return Response(json.dumps({"error": "unexpected request"}), 599, content_type="application/json")
        if self.check is not None:
            try:
                self.check(request)
            except Exception as exc:  # reported by verify(), and answered so the client sees it too
                self.failures.append(f"{request.method} {request.path}: {exc}")
                return Response(json.dumps({"error": str(exc)}), 598, content_type="application/json")
        if fault is not None:
            if fault["delay"]:
                time.sleep(fault["delay"])
            if fault["drop"]:
                raise ConnectionAbortedError("dropped on purpose")
            return _response(fault["status"], fault["body"] if fault["body"] is not None else {"error": "injected"}, fault["headers"])
        try:
            answer = route.handler(request, match)
        except Exception as exc:
            self.failures.append(f"{request.method} {request.path}: handler error {type(exc).__name__}: {exc}")
            return Response(json.dumps({"error": str(exc)}), 598, content_type="application/json")
        if isinstance(answer, Response):
            return answer
        if isinstance(answer, tuple):
            return _response(*answer)
        return _response(200, answer)


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    if body is None:
        return Response(b"", status, headers=headers)
    if isinstance(body, bytes | str):
        return Response(body, status, headers=headers)
    return Response(json.dumps(body), status, headers=headers, content_type="application/json")


def recording_sleep() -> Callable[[float], None]:
    """A sleep that waits for nothing and remembers what it was asked: ``sleep.calls``."""
    calls: list[float] = []

    def sleep(seconds: float) -> None:
        calls.append(seconds)

    sleep.calls = calls  # type: ignore[attr-defined]
    return sleep


def check_connector(cls: type) -> list[str]:
    """Conformance of a connector's declarations (see :func:`personalize.connectors.validate_connector_class`),
    plus what a usable connector needs: at least one stream or push target, secrets marked secret."""
    from ..connectors import validate_connector_class

    problems = validate_connector_class(cls)
    if problems:
        return problems
    if not cls.streams and not cls.push_targets:
        problems.append(f"{cls.name}: declares neither streams nor push targets")
    for s in cls.settings:
        if any(word in s.name.lower() for word in ("token", "password", "secret", "api_key")) and not s.secret:
            problems.append(f"{cls.name}: setting {s.name} looks like a credential but is not marked secret")
    return problems


def record_key(record: Any) -> str:
    """The primary key of a record a stream yields (what duplicates are judged by)."""
    from ..records import ContactRecord, DeletedRecord, EngagementRecord, OrderRecord, ProductRecord

    if isinstance(record, DeletedRecord):
        return f"deleted {record.entity} {record.external_id}"
    if isinstance(record, ContactRecord):
        return record.external_id or record.email
    if isinstance(record, ProductRecord | OrderRecord | EngagementRecord):
        return record.id
    raise TypeError(f"not a record: {record!r}")


def read_stream(connector: Any, stream: str, state: dict | None = None) -> tuple[list[str], list[tuple[int, dict]]]:
    """Run one pull: the keys of the records in order, and each checkpoint as (records before it, state)."""
    from ..records import Checkpoint, SkippedRecord

    keys: list[str] = []
    checkpoints: list[tuple[int, dict]] = []
    for item in connector.pull(stream, state):
        if isinstance(item, Checkpoint):
            checkpoints.append((len(keys), item.state))
        elif not isinstance(item, SkippedRecord):
            keys.append(record_key(item))
    return keys, checkpoints


def check_resume(make_connector: Callable[[], Any], stream: str, state: dict | None = None) -> list[str]:
    """The conformance checks on a stream's states; returns the problems found (empty: conforming).

    ``make_connector()`` must return a fresh connector talking to the same data each
    time. One full pull is compared with pulls resumed from each of its checkpoints:
    a resumed pull must yield every record the full pull yielded after that
    checkpoint (no gap) and none it yielded before it (no duplicate, beyond the
    stream's declared lookback). The last state must be JSON, must let a further
    pull start, and the stream must end with a checkpoint.
    """
    import json

    problems: list[str] = []
    keys, checkpoints = read_stream(make_connector(), stream, state)
    if not checkpoints or checkpoints[-1][0] != len(keys):
        problems.append(f"{stream}: does not end with a checkpoint")
    lookback = make_connector().stream(stream).lookback_seconds
    for done, cp_state in checkpoints:
        try:
            json.dumps(cp_state)
        except (TypeError, ValueError):
            problems.append(f"{stream}: state {cp_state!r} is not JSON")
            continue
        if done == len(keys):
            continue  # the final state starts the next window: checked below
        resumed, _ = read_stream(make_connector(), stream, cp_state)
        missing = [k for k in keys[done:] if k not in set(resumed)]
        if missing:
            problems.append(f"{stream}: resuming after {done} records misses {missing[:5]}")
        again = [k for k in resumed if k in set(keys[:done]) and k not in set(keys[done:])]
        if again and not lookback:
            problems.append(f"{stream}: resuming after {done} records repeats {again[:5]}")
    if checkpoints:
        try:
            read_stream(make_connector(), stream, checkpoints[-1][1])
        except Exception as exc:  # a state the connector cannot read back
            problems.append(f"{stream}: its final state cannot start a new pull: {type(exc).__name__}: {exc}")
    return problems
