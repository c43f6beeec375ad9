"""No event lost, none doubled: the real server killed mid-load, the database locked or cut off.

Clients here behave as the widget does: every event has its own id, and a batch not
answered 2xx (a refused connection, a cut one, a 503) is sent again until it is.
After each fault the rows are counted: every event ever answered 2xx is stored, and
at the end every event is stored exactly once, with what it implies (interactions,
orders, profiles) stored once too. Each test prints its figures (``pytest -s``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from dataclasses import dataclass, field

import sqlalchemy as sa

from personalize.app import create_app
from personalize.db import db
from personalize.sites import create_site
from personalize.testing import app_config, fresh_database, serve_in_thread

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


# ---------------------------------------------------------------- HTTP and events


def post(url: str, body: dict, timeout: float = 15.0) -> tuple[int | None, dict, dict | None]:
    """(status, headers, JSON body); status None when the connection failed or was cut."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = {"unparsed": raw[:200].decode("latin-1")}
        return exc.code, dict(exc.headers), parsed
    except (OSError, ValueError, http.client.HTTPException):  # refused, reset, timed out, or a half-written answer
        return None, {}, None


def get_status(url: str) -> tuple[int | None, dict | None]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
    except (OSError, ValueError, http.client.HTTPException):
        return None, None


def make_batches(tag: str, batches: int, size: int) -> list[list[dict]]:
    """Batches of product views and two-item orders, every event id, visitor, product and order unique."""
    t = int(time.time() * 1000) - 60_000
    out = []
    for b in range(batches):
        batch = []
        for i in range(size):
            n = f"{tag}-{b}-{i}"
            if i % 5 == 4:
                batch.append({"id": f"e-{n}", "type": "order_completed", "visitor": f"v-{tag}-{b}", "ts": t, "order_id": f"o-{n}",
                              "items": [{"product_id": f"p-{n}-a", "quantity": 1, "price": 3.0},
                                        {"product_id": f"p-{n}-b", "quantity": 2, "price": 4.5}]})
            else:
                batch.append({"id": f"e-{n}", "type": "product_viewed", "visitor": f"v-{tag}-{b}", "product_id": f"p-{n}", "ts": t})
        out.append(batch)
    return out


def assert_error_shape(status: int, headers: dict, body: dict | None) -> None:
    assert status == 503, (status, body)
    retry = {k.lower(): v for k, v in headers.items()}.get("retry-after")
    assert retry and retry.isdigit() and int(retry) > 0, headers
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert body["error"]["code"] == "unavailable" and body["error"]["message"], body


@dataclass
class Tally:
    """What the clients saw, shared by their threads."""

    acked: set[str] = field(default_factory=set)
    answers: Counter = field(default_factory=Counter)  # status (or "cut") -> count
    sent: int = 0
    resent: int = 0
    duplicates_answered: int = 0
    in_flight: int = 0
    timeline: list = field(default_factory=list)  # (started, ended, status) of every request
    bad: list = field(default_factory=list)  # anything but 202, 503 (well formed) or a cut connection
    lock: threading.Lock = field(default_factory=threading.Lock)


def client(url: str, key: str, batches: list[list[dict]], tally: Tally, stop: threading.Event) -> None:
    try:
        _send_all(url, key, batches, tally, stop)
    except Exception as exc:  # a client that died would pass for a server that stalled
        with tally.lock:
            tally.bad.append(("client error", repr(exc)))


def _send_all(url: str, key: str, batches: list[list[dict]], tally: Tally, stop: threading.Event) -> None:
    """Send each batch until it is answered 202, as the widget's outbox does."""
    outbox = deque(batches)
    tries = 0
    while outbox and not stop.is_set():
        batch = outbox[0]
        with tally.lock:
            tally.sent += 1
            tally.resent += tries > 0
            tally.in_flight += 1
        started = time.monotonic()
        status, headers, body = post(url, {"key": key, "events": batch})
        with tally.lock:
            tally.in_flight -= 1
            tally.timeline.append((started, time.monotonic(), status))
            tally.answers[status or "cut"] += 1
            if status == 202:
                ids = [e["id"] for e in batch]
                if body.get("accepted", -1) + body.get("duplicates", -1) != len(batch) or body.get("rejected"):
                    tally.bad.append((status, body))
                tally.duplicates_answered += body["duplicates"]
                tally.acked.update(ids)
            elif status == 503:
                try:
                    assert_error_shape(status, headers, body)
                except AssertionError as exc:
                    tally.bad.append((status, str(exc)))
            elif status is not None:
                tally.bad.append((status, body))
        if status == 202:
            outbox.popleft()
            tries = 0
        else:
            tries += 1
            time.sleep(min(0.5, 0.05 * tries))


# ---------------------------------------------------------------- reconciling by rows


def reconcile(url: str, site_id: int, expected: list[list[dict]], acked: set[str], complete: bool) -> dict[str, int]:
    """Count rows: every acknowledged event stored once; with ``complete``, every event stored once."""
    events = [e for batch in expected for e in batch]
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT event_id, COUNT(*) FROM events WHERE site_id = :s GROUP BY event_id"), {"s": site_id}).all()
            stored = dict(rows)
            doubled = {k: n for k, n in stored.items() if n != 1}
            assert not doubled, f"events stored more than once: {list(doubled.items())[:5]}"
            missing_acked = acked - set(stored)
            assert not missing_acked, f"{len(missing_acked)} events answered 2xx are not stored, e.g. {sorted(missing_acked)[:5]}"
            unknown = set(stored) - {e["id"] for e in events}
            assert not unknown, f"rows for events never sent: {sorted(unknown)[:5]}"
            if not complete:
                return {"stored": len(stored)}
            missing = {e["id"] for e in events} - set(stored)
            assert not missing, f"{len(missing)} events never stored, e.g. {sorted(missing)[:5]}"
            # what the events imply is stored once too: no order, interaction or profile doubled by a re-send
            orders = [e for e in events if e["type"] == "order_completed"]
            views = len(events) - len(orders)
            count = lambda sql: conn.execute(sa.text(sql), {"s": site_id}).scalar_one()  # noqa: E731
            assert count("SELECT COUNT(*) FROM orders WHERE site_id = :s") == len(orders)
            assert count("SELECT COUNT(DISTINCT external_id) FROM orders WHERE site_id = :s") == len(orders)
            assert count("SELECT COUNT(*) FROM interactions WHERE site_id = :s") == views + sum(len(o["items"]) for o in orders)
            visitors = {e["visitor"] for e in events}
            assert count("SELECT COUNT(*) FROM identities WHERE site_id = :s AND kind = 'visitor'") == len(visitors)
            assert count("SELECT COUNT(*) FROM profiles WHERE site_id = :s") == len(visitors)  # no orphan from a rollback
            assert count("SELECT COUNT(DISTINCT profile_id) FROM events WHERE site_id = :s") == len(visitors)
            return {"stored": len(stored), "orders": len(orders), "visitors": len(visitors)}
    finally:
        engine.dispose()


def new_site(app) -> tuple[int, str]:
    with app.app_context():
        site, _secret = create_site("Kill test shop", ["https://shop.example"])
        site_id, key = site.id, site.public_key
        db.session.remove()
        db.engine.dispose()
    return site_id, key


# ---------------------------------------------------------------- 1. SIGKILL of the whole server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app, port: int, log_path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONALIZE_")}
    env.update({
        "PERSONALIZE_DATABASE_URL": app.config["DATABASE_URL"], "PERSONALIZE_INSTANCE_PATH": app.instance_path,
        "PERSONALIZE_AUTO_MIGRATE": "false", "PERSONALIZE_SECRET_KEY": app.config["SECRET_KEY"],
        "PERSONALIZE_SYNC_SCHEDULER": "false", "PERSONALIZE_MODEL_CHECK_SECONDS": "3600",
    })
    command = [sys.executable, "-c", "from personalize.cli import main; main()",
               "serve", "--port", str(port), "--workers", "2", "--threads", "4"]
    # a session (and so a process group) of its own: the kill takes the master and every worker at once
    proc = subprocess.Popen(command, env=env, stdout=log_path.open("a"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if get_status(f"http://127.0.0.1:{port}/api/v1/health")[0] == 200:
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    kill_group(proc)
    raise AssertionError(f"the server did not start:\n{log_path.read_text()[-3000:]}")


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the workers too, not only the master we waited for
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError("processes of the killed server are still running")


def wait_until(predicate, timeout: float, what: str, detail=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what} {detail()}")


KILLS = 3
CLIENTS, BATCHES, SIZE = 6, 20, 10


def test_sigkill_mid_load_loses_and_doubles_nothing(tmp_path):
    with fresh_database(tmp_path) as url:
        app = create_app(app_config(tmp_path / "instance", url))
        site_id, key = new_site(app)
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}/api/v1/events"
        log = tmp_path / "serve.log"
        work = [make_batches(f"c{c}", BATCHES, SIZE) for c in range(CLIENTS)]
        everything = [b for batches in work for b in batches]
        total = len(everything) * SIZE
        tally, stop = Tally(), threading.Event()
        proc = start_server(app, port, log)
        threads = [threading.Thread(target=client, args=(endpoint, key, batches, tally, stop), daemon=True) for batches in work]
        for t in threads:
            t.start()
        kills, cut_mid_request, checked = 0, 0, 0
        try:
            for k in range(KILLS):
                threshold = total * (k + 1) // (KILLS + 2)
                detail = lambda: f"{len(tally.acked)} acked, answers {dict(tally.answers)}, bad {tally.bad[:3]}\n{log.read_text()[-3000:]}"  # noqa: E731
                wait_until(lambda t=threshold: len(tally.acked) >= t, 120, f"{threshold} events acknowledged", detail)
                wait_until(lambda: tally.in_flight > 0, 30, "a request in flight", detail)
                with tally.lock:
                    cut_mid_request += tally.in_flight
                kill_group(proc)  # master and workers, mid-request: nothing gets to finish or clean up
                kills += 1
                with tally.lock:  # no answer can come from a dead server: this is every acknowledgement it gave
                    acked_now = set(tally.acked)
                checked += reconcile(url, site_id, everything, acked_now, complete=False)["stored"]
                proc = start_server(app, port, log)  # the same database, the same port
            for t in threads:
                t.join(timeout=180)
            assert not any(t.is_alive() for t in threads), "clients still re-sending after the last restart"
        finally:
            stop.set()
            kill_group(proc, signal.SIGTERM)
        assert not tally.bad, tally.bad[:5]
        assert len(tally.acked) == total
        figures = reconcile(url, site_id, everything, tally.acked, complete=True)
        print(f"\nkill/restart: {kills} SIGKILLs of master and workers, {cut_mid_request} requests in flight at the kills, "
              f"{tally.sent} batches sent ({tally.resent} re-sends), answers {dict(tally.answers)}, "
              f"{len(tally.acked)} events acknowledged, {tally.duplicates_answered} re-sent events answered as duplicates, "
              f"{figures['stored']} events reconciled exactly once ({checked} rows checked between kills)")
        assert figures["stored"] == total


# ---------------------------------------------------------------- 2. SQLite locked by another program


def _all_at_once(calls) -> list:
    """Run the calls on threads at the same moment (so the pool holds a connection for each)."""
    results: list = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i, call):
        start.wait()
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def concurrently(url: str, key: str, batches: list[list[dict]]) -> list[tuple[int | None, dict, dict | None]]:
    """Post every batch at once, from a thread each (so the group commit groups them)."""
    return _all_at_once([lambda b=b: post(url, {"key": key, "events": b}) for b in batches])


def test_sqlite_locked_answers_503_then_recovers_by_itself(tmp_path):
    # SQLite only, whatever the suite's database: the lock is SQLite's; a short busy timeout keeps the test quick
    with fresh_database(tmp_path, base_url="sqlite") as url:
        app = create_app(app_config(tmp_path, url, SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"timeout": 0.3}}))
        site_id, key = new_site(app)
        batches = make_batches("lock", 9, 10)
        with serve_in_thread(app) as server:
            endpoint = f"{server.url}/api/v1/events"
            status, _, body = post(endpoint, {"key": key, "events": batches[0]})
            assert status == 202 and body["accepted"] == 10
            assert get_status(f"{server.url}/api/v1/ready")[0] == 200

            locker = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=5)
            try:
                locker.execute("BEGIN EXCLUSIVE")  # held far longer than the app's busy timeout
                answers = concurrently(endpoint, key, batches[1:])
                for status, headers, body in answers:
                    assert_error_shape(status, headers, body)
                status, body = get_status(f"{server.url}/api/v1/ready")
                assert status == 503 and body["database"]["state"] == "error", body
                assert body["status"] == "error"
                # none of the refused events is in the file (the lock holder may read it)
                stored = {r[0] for r in locker.execute("SELECT event_id FROM events WHERE site_id = ?", (site_id,))}
                assert stored == {e["id"] for e in batches[0]}
            finally:
                locker.execute("ROLLBACK")
                locker.close()

            # released: the same server, with no restart, takes the re-sent batches
            wait_until(lambda: get_status(f"{server.url}/api/v1/ready")[0] == 200, 10, "ready again")
            answers = concurrently(endpoint, key, batches[1:])
            assert [a[0] for a in answers] == [202] * 8
            assert sum(a[2]["accepted"] for a in answers) == 80
        with app.app_context():
            db.engine.dispose()
        acked = {e["id"] for batch in batches for e in batch}
        figures = reconcile(url, site_id, batches, acked, complete=True)
        print(f"\nsqlite lock: {len(batches) - 1} concurrent batches answered 503 with Retry-After while locked, "
              f"all {figures['stored']} events stored once after the release")


# ---------------------------------------------------------------- 3. PostgreSQL cut off and back


class CuttableProxy:
    """A TCP relay to PostgreSQL that can drop every connection and turn new ones away, as a restarting
    server does, without touching the PostgreSQL server other tests share."""

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5432)):
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.refusing = threading.Event()
        self.pairs: set[tuple[socket.socket, socket.socket]] = set()
        self.lock = threading.Lock()
        self.relayed = self.cut_connections = self.turned_away = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return  # closed
            if self.refusing.is_set():
                self.turned_away += 1
                downstream.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                downstream.close()
                continue
            upstream.settimeout(None)
            pair = (downstream, upstream)
            with self.lock:
                self.pairs.add(pair)
                self.relayed += 1
            threading.Thread(target=self._pump, args=(downstream, upstream, pair), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, downstream, pair), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, pair) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        self._drop(pair)

    def _drop(self, pair) -> bool:
        with self.lock:
            if pair not in self.pairs:
                return False
            self.pairs.discard(pair)
        for sock in pair:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        return True

    def cut(self) -> None:
        """Every open connection dropped mid-whatever, and new ones turned away until :meth:`restore`."""
        self.refusing.set()
        with self.lock:
            pairs = list(self.pairs)
        self.cut_connections += sum(self._drop(pair) for pair in pairs)

    def restore(self) -> None:
        self.refusing.clear()

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_postgresql_cut_off_answers_503_then_recovers_without_restart(tmp_path):
    # always PostgreSQL (it is always there in CI), whatever database the rest of the suite runs on
    base = os.environ.get("PERSONALIZE_TEST_DATABASE_URL") or ""
    base = base if base.startswith("postgresql") else POSTGRES
    proxy = CuttableProxy()
    try:
        with fresh_database(tmp_path, base_url=base) as direct:
            url = direct.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/", 1)
            assert url != direct
            app = create_app(app_config(tmp_path, url))
            site_id, key = new_site(app)
            work = [make_batches(f"pg{c}", 25, 10) for c in range(4)]
            everything = [b for batches in work for b in batches]
            total = len(everything) * 10
            tally, stop = Tally(), threading.Event()
            with serve_in_thread(app) as server:
                endpoint = f"{server.url}/api/v1/events"
                threads = [threading.Thread(target=client, args=(endpoint, key, b, tally, stop), daemon=True) for b in work]
                for t in threads:
                    t.start()
                try:
                    wait_until(lambda: len(tally.acked) >= total // 4, 60, "a quarter acknowledged")
                    proxy.cut()  # the database "restarts": connections gone, none accepted
                    cut_at = time.monotonic()
                    wait_until(lambda: tally.answers[503] >= 12, 30, "503s while the database is away")
                    status, ready = get_status(f"{server.url}/api/v1/ready")
                    assert status == 503 and ready["database"]["state"] == "error", ready
                    assert get_status(f"{server.url}/api/v1/health")[0] == 503
                    during = len(tally.acked)
                    time.sleep(1.0)
                    restored_at = time.monotonic()
                    proxy.restore()  # back: the same app process must find it by itself
                    for t in threads:
                        t.join(timeout=120)
                    assert not any(t.is_alive() for t in threads), "clients still re-sending after the database came back"
                finally:
                    stop.set()
                assert get_status(f"{server.url}/api/v1/ready")[0] == 200
            with app.app_context():
                db.engine.dispose()
            assert not tally.bad, tally.bad[:5]
            # nothing that began and ended while the database was away was acknowledged
            away = [s for started, ended, s in tally.timeline if started > cut_at and ended < restored_at]
            assert away and 202 not in away, Counter(away)
            figures = reconcile(direct, site_id, everything, tally.acked, complete=True)
            assert figures["stored"] == total and len(tally.acked) == total
            print(f"\npostgresql cut off: {proxy.cut_connections} connections cut, {proxy.turned_away} turned away; "
                  f"{len(away)} requests during the outage, all 503 + Retry-After; {during} events acknowledged before it; "
                  f"{tally.sent} batches sent ({tally.resent} re-sends), {figures['stored']} events reconciled exactly once, no restart")
    finally:
        proxy.close()


# ---------------------------------------------------------------- 4. every pooled connection taken


def test_pool_exhausted_answers_503_not_500(tmp_path):
    base = os.environ.get("PERSONALIZE_TEST_DATABASE_URL") or ""
    base = base if base.startswith("postgresql") else POSTGRES
    with fresh_database(tmp_path, base_url=base) as url:
        options = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 0.2, "pool_pre_ping": True}
        app = create_app(app_config(tmp_path, url, SQLALCHEMY_ENGINE_OPTIONS=options))
        site_id, key = new_site(app)
        batch = make_batches("pool", 1, 5)[0]
        client_ = app.test_client()
        with app.app_context():
            held = db.engine.connect()  # the pool's only connection, busy elsewhere
            try:
                response = client_.post("/api/v1/events", json={"key": key, "events": batch})
            finally:
                held.close()
        assert_error_shape(response.status_code, dict(response.headers), response.get_json())
        response = client_.post("/api/v1/events", json={"key": key, "events": batch})
        assert response.status_code == 202 and response.get_json()["accepted"] == 5
        with app.app_context():
            db.engine.dispose()
        reconcile(url, site_id, [batch], {e["id"] for e in batch}, complete=True)


# ---------------------------------------------------------------- 5. connections the database dropped


def _terminate_backends(base: str, application_name: str) -> int:
    """What a PostgreSQL restart does to one app's pooled connections: every one is closed
    by the server. Returns how many were."""
    engine = sa.create_engine(base, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            return len(conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"
            ), {"name": application_name}).all())
    finally:
        engine.dispose()


def test_postgresql_dropping_pooled_connections_costs_no_recommendation_and_no_event(tmp_path):
    """The pool does not ping a connection at every checkout (a round trip per request): this
    proves what replaces it. After the server closed every pooled connection, a burst of
    recommendations all answer 200 (each read retries on a fresh connection), and once the
    connections sat idle for DATABASE_PING_IDLE_SECONDS the next burst of event batches all
    answer 202 (idle connections are pinged and replaced); before the pause, a batch may
    answer 503, never 500, and its re-send is stored."""
    base = os.environ.get("PERSONALIZE_TEST_DATABASE_URL") or ""
    base = base if base.startswith("postgresql") else POSTGRES
    name = "pz-drop-" + os.urandom(4).hex()
    with fresh_database(tmp_path, base_url=base) as direct:
        url = f"{direct}&application_name={name}"
        app = create_app(app_config(tmp_path, url, THREADS=4, DATABASE_PING_IDLE_SECONDS=0.5))
        site_id, key = new_site(app)
        burst = 6
        with serve_in_thread(app) as server:
            rec_url = f"{server.url}/api/v1/recommendations?key={key}&limit=3&visitor="
            events = f"{server.url}/api/v1/events"
            warm = make_batches("warm", burst, 3)
            assert {s for s, _h, _b in concurrently(events, key, warm)} == {202}
            assert {get_status(rec_url + "v")[0] for _ in range(3)} == {200}

            dropped = _terminate_backends(base, name)
            assert dropped >= 2, "the burst left several connections in the pool"
            statuses = _all_at_once([lambda i=i: get_status(f"{rec_url}w{i}")[0] for i in range(burst)])
            assert statuses == [200] * burst, statuses

            # a batch right after the drop may meet a dead connection: 503 (never 500), and the re-send is stored
            assert _terminate_backends(base, name) >= 1
            first = make_batches("after", 1, 3)[0]
            status, headers, body = post(events, {"key": key, "events": first})
            if status != 202:
                assert_error_shape(status, headers, body)
                assert status == 503
                status, _h, _b = post(events, {"key": key, "events": first})
            assert status == 202

            _all_at_once([lambda i=i: get_status(f"{rec_url}x{i}")[0] for i in range(burst)])  # connections back in the pool
            assert _terminate_backends(base, name) >= 2
            time.sleep(0.8)  # idle longer than DATABASE_PING_IDLE_SECONDS
            later = make_batches("idle", burst, 3)
            statuses = [s for s, _h, _b in concurrently(events, key, later)]
            assert statuses == [202] * burst, statuses
        with app.app_context():
            db.engine.dispose()
        reconcile(direct, site_id, warm + [first] + later, {e["id"] for b in warm + [first] + later for e in b}, complete=True)
