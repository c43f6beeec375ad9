"""Counters, histograms and gauges, shown at ``/metrics`` in Prometheus' text format.

Any module, at any floor, declares what it counts once, at import, and counts as it works;
nothing here imports Flask or a database::

    from personalize import metrics

    STEPS = metrics.counter("personalize_journey_steps_total", "Journey steps run, by action and outcome.",
                            ["action", "outcome"])
    STEPS.inc(action="email", outcome="sent")

Declaring the same name again returns the same metric (so two modules may both declare it),
as long as the kind and labels agree. Label values must come from a small, fixed set (a
route rule, a job name, an outcome), never from what a client sends (a path, a visitor id):
a metric keeps at most :data:`MAX_SERIES` label sets and counts the rest under ``(other)``.

Counting happens in the process's memory, at the cost of a dictionary update under a lock.
Several processes (gunicorn workers, Celery workers, several machines) report through a
shared store: each process publishes its figures every :data:`PUBLISH_SECONDS` seconds
(:class:`Publisher`), to Redis when ``REDIS_URL`` is set (:class:`RedisStore`), else to
files in the instance folder (:class:`FileStore`), and a scrape adds them up. Counters and
histograms add up over every process that ever ran (they never go down, so Prometheus'
``rate()`` stays right when a worker restarts); gauges over the processes alive now.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: the most label sets one metric keeps; beyond, new ones are counted under "(other)"
MAX_SERIES = 1000
OTHER = "(other)"
#: how often a process publishes its figures to the shared store
PUBLISH_SECONDS = 5.0
#: a process whose figures are older than this is not alive: its gauges no longer count
LIVE_SECONDS = 3 * PUBLISH_SECONDS
#: seconds: from a quarter of a millisecond to ten seconds (a recommendation takes about one millisecond)
DEFAULT_BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metric:
    """A named family of series, one per set of label values."""

    kind = ""

    def __init__(self, name: str, help: str, labels: Sequence[str]):  # noqa: A002 (Prometheus calls it help)
        self.name, self.help, self.labels = name, help, tuple(labels)
        self._lock = threading.Lock()
        self._values: dict[tuple[str, ...], Any] = {}
        self._warned = False

    def _key(self, labels: dict[str, Any]) -> tuple[str, ...]:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes the labels {', '.join(self.labels) or '(none)'}, got {', '.join(sorted(labels)) or '(none)'}")
        return tuple(str(labels[name]) for name in self.labels)

    def _bounded(self, key: tuple[str, ...]) -> tuple[str, ...]:
        """``key``, or the "(other)" key once the metric holds :data:`MAX_SERIES` series (caller holds the lock)."""
        if key in self._values or len(self._values) < MAX_SERIES:
            return key
        if not self._warned:
            self._warned = True
            log.warning("metric %s has %d label sets; further ones are counted as %s (use labels from a small, fixed set)",
                        self.name, MAX_SERIES, OTHER)
        return (OTHER,) * len(self.labels)

    def series(self) -> dict[str, float]:
        """``{sample: value}`` of this process, each sample as written at /metrics (``name{label="value"}``)."""
        raise NotImplementedError

    def _restart(self) -> None:
        """In a forked child: start from zero (the parent publishes what it counted), keeping the series."""
        self._lock = threading.Lock()  # the parent's may have been held by another thread at the fork
        if self.kind == "gauge":
            self._values = {}
        elif self.kind == "histogram":
            self._values = {key: [0] * len(counts[:-1]) + [0.0] for key, counts in self._values.items()}
        else:
            self._values = dict.fromkeys(self._values, 0)


class Counter(Metric):
    """A count that only goes up: requests, events, sync runs."""

    kind = "counter"

    def inc(self, amount: float = 1, **labels: Any) -> None:
        if amount < 0:
            raise ValueError(f"{self.name} is a counter: it only goes up")
        self.add(self._key(labels), amount)

    def add(self, key: tuple[str, ...], amount: float = 1) -> None:
        """:meth:`inc` with the label values given in declaration order (the fast path of hot code)."""
        with self._lock:
            key = self._bounded(key)
            self._values[key] = self._values.get(key, 0) + amount

    def series(self) -> dict[str, float]:
        with self._lock:
            items = list(self._values.items())
        return {sample(self.name, self.labels, key): value for key, value in items}


class Gauge(Metric):
    """A value that goes up and down in this process (jobs waiting in its pool); summed over live processes."""

    kind = "gauge"

    def set(self, value: float, **labels: Any) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[self._bounded(key)] = value

    def inc(self, amount: float = 1, **labels: Any) -> None:
        key = self._key(labels)
        with self._lock:
            key = self._bounded(key)
            self._values[key] = self._values.get(key, 0) + amount

    def dec(self, amount: float = 1, **labels: Any) -> None:
        self.inc(-amount, **labels)

    def series(self) -> dict[str, float]:
        with self._lock:
            items = list(self._values.items())
        return {sample(self.name, self.labels, key): value for key, value in items}


class Histogram(Metric):
    """How long things take (or how large they are): counts per bucket, a sum and a count."""

    kind = "histogram"

    def __init__(self, name: str, help: str, labels: Sequence[str], buckets: Sequence[float] = DEFAULT_BUCKETS):  # noqa: A002
        super().__init__(name, help, labels)
        if "le" in self.labels:
            raise ValueError("a histogram's label cannot be called le")
        self.buckets = tuple(sorted(float(b) for b in buckets))

    def observe(self, value: float, **labels: Any) -> None:
        self.add(self._key(labels), value)

    def add(self, key: tuple[str, ...], value: float) -> None:
        """:meth:`observe` with the label values in declaration order."""
        index = bisect.bisect_left(self.buckets, value)
        with self._lock:
            key = self._bounded(key)
            counts = self._values.get(key)
            if counts is None:
                counts = self._values[key] = [0] * (len(self.buckets) + 1) + [0.0]
            counts[index] += 1
            counts[-1] += value

    def series(self) -> dict[str, float]:
        with self._lock:
            items = [(key, list(counts)) for key, counts in self._values.items()]
        out: dict[str, float] = {}
        names = (*self.labels, "le")
        for key, counts in items:
            running = 0
            for bound, n in zip((*self.buckets, math.inf), counts[:-1], strict=True):
                running += n
                out[sample(self.name + "_bucket", names, (*key, _number(bound)))] = running
            out[sample(self.name + "_sum", self.labels, key)] = counts[-1]
            out[sample(self.name + "_count", self.labels, key)] = running
        return out


_REGISTRY: dict[str, Metric] = {}
_REGISTRY_LOCK = threading.Lock()


def _declare(cls: type[Metric], name: str, help: str, labels: Iterable[str], **options: Any) -> Any:  # noqa: A002
    labels = tuple(labels)
    with _REGISTRY_LOCK:
        found = _REGISTRY.get(name)
        if found is not None:
            if type(found) is not cls or found.labels != labels:
                raise ValueError(f"metric {name} is already a {found.kind} with labels {found.labels}")
            return found
        metric = _REGISTRY[name] = cls(name, help, labels, **options)
        return metric


def counter(name: str, help: str, labels: Iterable[str] = ()) -> Counter:  # noqa: A002
    """The counter ``name`` (declared now, or the one declared before with the same labels)."""
    return _declare(Counter, name, help, labels)


def gauge(name: str, help: str, labels: Iterable[str] = ()) -> Gauge:  # noqa: A002
    """The gauge ``name``: this process's value, summed over every live process at /metrics."""
    return _declare(Gauge, name, help, labels)


def histogram(name: str, help: str, labels: Iterable[str] = (), buckets: Sequence[float] = DEFAULT_BUCKETS) -> Histogram:  # noqa: A002
    """The histogram ``name`` with upper bounds ``buckets`` (seconds by default)."""
    return _declare(Histogram, name, help, labels, buckets=buckets)


#: journeys count each step they run here: ``JOURNEY_STEPS.inc(step="email", outcome="sent")``
JOURNEY_STEPS = counter("personalize_journey_steps_total", "Journey steps run, by kind of step (wait, branch, email, webhook, "
                        "connector action…) and outcome (done, failed, skipped…).", ["step", "outcome"])


def registered() -> list[Metric]:
    with _REGISTRY_LOCK:
        return list(_REGISTRY.values())


def _after_fork_in_child() -> None:
    # a forked process (a gunicorn worker, a Celery pool process) would otherwise publish its parent's counts again
    global _REGISTRY_LOCK
    _REGISTRY_LOCK = threading.Lock()
    for metric in _REGISTRY.values():
        metric._restart()


os.register_at_fork(after_in_child=_after_fork_in_child)


# -- the text format -------------------------------------------------------------------------------

def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def sample(name: str, labels: Sequence[str], values: Sequence[str]) -> str:
    """``name{label="value",…}`` as Prometheus' text format writes a series."""
    if not labels:
        return name
    return name + "{" + ",".join(f'{label}="{_escape(str(value))}"' for label, value in zip(labels, values, strict=True)) + "}"


def snapshot() -> dict[str, Any]:
    """This process's figures: ``{"meta": {family: [kind, help]}, "counters": {family: {sample: value}},
    "gauges": {…}}`` (histograms are with the counters: their buckets only go up too)."""
    meta, counters, gauges = {}, {}, {}
    for metric in registered():
        meta[metric.name] = [metric.kind, metric.help]
        (gauges if metric.kind == "gauge" else counters)[metric.name] = metric.series()
    return {"meta": meta, "counters": counters, "gauges": gauges}


def render(meta: dict[str, list[str]], values: dict[str, dict[str, float]]) -> str:
    """The text format: for each family, ``# HELP``, ``# TYPE`` and its samples, sorted."""
    lines = []
    for family in sorted(set(meta) | set(values)):
        kind, help_ = meta.get(family, ["untyped", ""])
        lines.append(f"# HELP {family} {help_.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
        lines.append(f"# TYPE {family} {kind}")
        for name, value in sorted(values.get(family, {}).items()):
            lines.append(f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


def _add_into(total: dict[str, dict[str, float]], part: dict[str, dict[str, float]]) -> None:
    for family, samples in part.items():
        into = total.setdefault(family, {})
        for name, value in samples.items():
            into[name] = into.get(name, 0) + value


# -- sharing between processes ---------------------------------------------------------------------

class StoreUnavailable(RuntimeError):
    """The shared store cannot be read: a scrape answers 503 rather than figures of part of the processes."""


class FileStore:
    """Each process's figures in a file of its own in ``folder`` (the instance folder's ``metrics/``), for
    one machine without Redis: every gunicorn worker of an instance shares its folder.

    A process writes its whole figures (replacing its file at once), so a reader never sees half of
    them. Files of processes that are gone stay and keep counting (counters must not go down); a
    process starting folds those of this machine into ``archive-<host>.json`` so they do not pile up.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.host = socket.gethostname().replace("-", "_") or "host"
        self.token = ""
        self._pid = -1
        self._lock = threading.Lock()

    def _own_file(self) -> Path:
        if self._pid != os.getpid():  # a forked process writes a file of its own
            self._pid, self.token = os.getpid(), secrets.token_hex(4)
        return self.folder / f"{self.host}-{self._pid}-{self.token}.json"

    def publish(self, figures: dict[str, Any]) -> None:
        with self._lock:  # the publishing thread and a scrape may publish at once
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self._own_file()
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps({**figures, "time": time.time()}), encoding="utf-8")
            os.replace(temporary, path)

    def collect(self) -> tuple[dict[str, list[str]], dict[str, dict[str, float]], int]:
        """``(meta, values, live processes)`` over every file; a file being replaced is read whole or not at all."""
        meta: dict[str, list[str]] = {}
        counters: dict[str, dict[str, float]] = {}
        gauges: dict[str, dict[str, float]] = {}
        live, now = 0, time.time()
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                figures = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # removed by a compaction meanwhile
            meta.update(figures.get("meta", {}))
            _add_into(counters, figures.get("counters", {}))
            if not path.name.startswith("archive-") and now - float(figures.get("time", 0)) <= LIVE_SECONDS and self._alive(path):
                live += 1
                _add_into(gauges, figures.get("gauges", {}))
        for family in meta:
            if meta[family][0] == "gauge":
                counters.setdefault(family, {})
        return meta, {**counters, **gauges}, live

    def _alive(self, path: Path) -> bool:
        """A file of this machine whose process is gone is not alive, however fresh; another machine's is, while fresh."""
        host, _, rest = path.name.partition("-")
        if host != self.host:
            return True
        try:
            return _alive(int(rest.split("-")[0]))
        except ValueError:
            return False

    def retire(self) -> None:
        """Nothing to do: a file of a process that is gone keeps its counters, and its gauges stop counting."""

    def compact(self) -> None:
        """Fold the files of this machine's processes that no longer exist into its archive (under a lock)."""
        if not self.folder.is_dir():
            return
        with (self.folder / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            archive_path = self.folder / f"archive-{self.host}.json"
            archive: dict[str, Any] = {"meta": {}, "counters": {}}
            if archive_path.exists():
                archive = json.loads(archive_path.read_text(encoding="utf-8"))
            gone = []
            for path in self.folder.glob(f"{self.host}-*.json"):
                if self._alive(path):
                    continue
                try:
                    figures = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                archive["meta"].update(figures.get("meta", {}))
                _add_into(archive["counters"], figures.get("counters", {}))
                gone.append(path)
            if gone:
                temporary = archive_path.with_suffix(".tmp")
                temporary.write_text(json.dumps({**archive, "time": 0}), encoding="utf-8")
                os.replace(temporary, archive_path)  # the archive holds them before their files go
                for path in gone:
                    path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RedisStore:
    """Every process's figures added up in Redis: counters as increments since the last publication
    (``HINCRBYFLOAT`` on one hash, so the totals survive any process), gauges in a hash per process
    that expires when the process stops publishing. For several machines: one scrape anywhere sees all."""

    def __init__(self, url: str, prefix: str = "personalize:metrics:"):
        self.url, self.prefix = url, prefix
        self._client = None
        self._pid = -1
        self._sent: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def _redis(self):
        if self._client is None or self._pid != os.getpid():
            import redis

            self._client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=1.0)
            self._pid = os.getpid()
            self._sent = {}  # a forked process starts its own count from zero
        return self._client

    def publish(self, figures: dict[str, Any]) -> None:
        import redis

        with self._lock:
            client = self._redis()
            deltas: dict[str, float] = {}
            for family, samples in figures["counters"].items():
                sent = self._sent.get(family, {})
                for name, value in samples.items():
                    if value != sent.get(name, 0):
                        deltas[f"{family}\t{name}"] = value - sent.get(name, 0)
            live_key = f"{self.prefix}live:{socket.gethostname()}:{os.getpid()}"
            pipe = client.pipeline(transaction=True)
            pipe.hset(f"{self.prefix}meta", mapping={family: json.dumps(m) for family, m in figures["meta"].items()})
            for field, delta in deltas.items():
                pipe.hincrbyfloat(f"{self.prefix}counters", field, delta)
            gauges = {f"{family}\t{name}": value for family, samples in figures["gauges"].items() for name, value in samples.items()}
            pipe.delete(live_key)
            pipe.hset(live_key, mapping={"\talive": 1, **gauges})
            pipe.expire(live_key, int(LIVE_SECONDS))
            try:
                pipe.execute()
            except (redis.RedisError, OSError) as exc:
                raise StoreUnavailable(f"Redis at {self.url}: {exc}") from exc
            self._sent = {family: dict(samples) for family, samples in figures["counters"].items()}

    def retire(self) -> None:
        """This process is stopping: its gauges stop counting now, not when they expire."""
        self._redis().delete(f"{self.prefix}live:{socket.gethostname()}:{os.getpid()}")

    def collect(self) -> tuple[dict[str, list[str]], dict[str, dict[str, float]], int]:
        import redis

        client = self._redis()
        try:
            meta_raw = client.hgetall(f"{self.prefix}meta")
            counters_raw = client.hgetall(f"{self.prefix}counters")
            live_keys = list(client.scan_iter(match=f"{self.prefix}live:*", count=1000))
            pipe = client.pipeline(transaction=False)
            for key in live_keys:
                pipe.hgetall(key)
            lives = pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis at {self.url}: {exc}") from exc
        meta = {k.decode(): json.loads(v) for k, v in meta_raw.items()}
        values: dict[str, dict[str, float]] = {family: {} for family in meta}
        for field, value in counters_raw.items():
            family, name = field.decode().split("\t", 1)
            values.setdefault(family, {})[name] = float(value)
        live = 0
        for entries in lives:
            if not entries:
                continue  # expired between the scan and the read
            live += 1
            for field, value in entries.items():
                family, name = field.decode().split("\t", 1)
                if family:
                    into = values.setdefault(family, {})
                    into[name] = into.get(name, 0) + float(value)
        return meta, values, live


class Publisher:
    """Publishes this process's figures to a store every :data:`PUBLISH_SECONDS`, from a daemon thread.

    :meth:`ensure_running` starts the thread in the calling process (again in a forked child,
    whose parent's thread did not survive the fork); :meth:`publish` publishes now (a scrape does,
    so its own process's figures are current), and so does the process at exit.
    """

    def __init__(self, store: FileStore | RedisStore, interval: float = PUBLISH_SECONDS):
        self.store, self.interval = store, interval
        self._pid = -1
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def ensure_running(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._stop = threading.Event()
            if isinstance(self.store, FileStore):
                try:
                    self.store.compact()
                except OSError as exc:
                    log.warning("metrics: cannot fold the files of stopped processes in %s: %s", self.store.folder, exc)
            threading.Thread(target=self._run, name="personalize-metrics", daemon=True).start()
            import atexit

            atexit.register(self._final)

    def _run(self) -> None:
        failing = False
        while True:
            try:
                self.publish()
                if failing:
                    log.warning("metrics: publishing works again")
                failing = False
            except (StoreUnavailable, OSError) as exc:
                if not failing:
                    log.warning("metrics: cannot publish this process's figures (%s); trying every %.0f s", exc, self.interval)
                failing = True
            if self._stop.wait(self.interval):
                return

    def publish(self) -> None:
        self.store.publish(snapshot())

    def _final(self) -> None:
        if self._pid != os.getpid():
            return
        self._stop.set()
        with contextlib.suppress(Exception):  # at exit, nothing more can be done
            self.publish()
            self.store.retire()

    def stop(self) -> None:
        self._stop.set()
