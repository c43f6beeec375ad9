"""The database handle and schema migrations (Alembic)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.exc import DBAPIError

from . import metrics

log = logging.getLogger(__name__)

# Stable constraint names, so migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}



class _Database(SQLAlchemy):
    def _teardown_session(self, exc: BaseException | None) -> None:
        """End the request's session; one whose connection died (the database restarted or was cut off)
        has nothing left to roll back, and must not turn the answer already made into a 500."""
        try:
            self.session.remove()
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            log.warning("dropped a database connection that had gone away: %s", error.orig)
            self.session.registry.clear()  # the connection is invalidated already; the pool opens a new one


db = _Database(metadata=MetaData(naming_convention=NAMING))


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached or used right now (try again
    shortly), rather than that a statement's values were wrong: a refused or cut connection,
    a server restarting, SQLite's "database is locked", a pool with no free connection."""
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, OperationalError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


TURN_HELD = metrics.counter("personalize_sqlite_writer_seconds_total",
                            "Seconds the SQLite writer turn was held, by writer (events, segments, journeys, other).", ["writer"])
TURN_WAITED = metrics.counter("personalize_sqlite_writer_wait_seconds_total",
                              "Seconds writers waited for the SQLite writer turn, by writer.", ["writer"])
TURNS = metrics.counter("personalize_sqlite_writer_turns_total", "Times the SQLite writer turn was taken, by writer.", ["writer"])


class SQLiteWriterTurn:
    """One writer at a time across the processes of one SQLite file, queued by the kernel.

    SQLite lets one connection write at a time; the others wait in its busy handler, which
    sleeps 1, 2, 5, 10 … 100 ms between tries. With several web processes storing event
    batches, the database sat unlocked for most of those sleeps while every writer slept
    (events/s fell to a fifth of what one process stored alone). The group commit of
    :mod:`personalize.batching` takes this turn around its transaction instead: an
    exclusive ``flock`` on a file beside the database, which wakes the next waiter the
    moment it is released; so does the segment refresh that follows each batch
    (:func:`personalize.segments.live.refresh_profiles`), and so do the journeys' background
    writers (:func:`holding_writer_turn`). Other writers (the admin, imports) keep SQLite's own
    waiting; the turn only orders the busiest ones. Nothing for PostgreSQL, an in-memory database
    or a system without ``fcntl``.

    How long each kind of writer waited for the turn and held it is counted for ``/metrics``
    (:data:`TURN_HELD`, :data:`TURN_WAITED`, :data:`TURNS`): the rate of the seconds held, all
    writers together, is the share of the time the database's one writer is busy; near 1, writes
    queue, and the next step is PostgreSQL (docs/deployment.md).
    """

    def __init__(self, database: str | None):
        import threading

        self.path = f"{database}.writer-lock" if database and database != ":memory:" and not database.startswith("file:") else None
        # flock is per open file: the threads of a process queue here first; re-entrant, since a writer
        # holding the turn may call code that takes it too (a merge refreshing segments)
        self._thread = threading.RLock()
        self._handle = None
        self._pid = 0
        self._held = False
        self._depth = 0
        self._writer = ("other",)  # who holds the turn, and since when (perf_counter)
        self._since = 0.0

    def __enter__(self):
        return self.enter("other")

    def enter(self, writer: str):
        """Take the turn for ``writer`` (its label in the counters); :meth:`__exit__` gives it back."""
        if self.path is None:
            return self
        asked = time.perf_counter()
        self._thread.acquire()
        self._depth += 1
        if self._depth > 1:
            return self
        try:
            import fcntl

            if self._handle is None or self._pid != os.getpid():  # a handle opened before a fork is the parent's
                self._handle, self._pid = open(self.path, "a"), os.getpid()  # noqa: SIM115 - kept open for the process's life
            fcntl.flock(self._handle, fcntl.LOCK_EX)
            self._held = True
        except (ImportError, OSError) as exc:  # no turn: SQLite's own waiting still orders the writers
            log.warning("no SQLite writer turn at %s (%s)", self.path, exc)
            self._held = False
        self._writer, self._since = (writer,), time.perf_counter()
        TURN_WAITED.add(self._writer, self._since - asked)
        TURNS.add(self._writer)
        return self

    def __exit__(self, *exc) -> None:
        if self.path is None:
            return
        try:
            self._depth -= 1
            if self._depth == 0:
                if self._held:
                    import fcntl

                    self._held = False
                    fcntl.flock(self._handle, fcntl.LOCK_UN)
                TURN_HELD.add(self._writer, time.perf_counter() - self._since)
        finally:
            self._thread.release()


class _TurnFor:
    """``with writer_turn("events"):``: the app's turn, taken for a named writer."""

    __slots__ = ("turn", "writer")

    def __init__(self, turn: SQLiteWriterTurn, writer: str):
        self.turn, self.writer = turn, writer

    @property
    def path(self) -> str | None:
        return self.turn.path

    def __enter__(self):
        return self.turn.enter(self.writer)

    def __exit__(self, *exc) -> None:
        self.turn.__exit__(*exc)


def writer_turn(writer: str = "other"):
    """The app's :class:`SQLiteWriterTurn`, to be taken for ``writer`` (what ``/metrics`` counts it
    under: ``events``, ``segments``, ``journeys``; ``other`` by default); a context manager that
    does nothing on PostgreSQL."""
    from flask import current_app

    turn = current_app.extensions.get("personalize.writer_turn")
    if turn is None:
        url = db.engine.url
        turn = current_app.extensions.setdefault(
            "personalize.writer_turn", SQLiteWriterTurn(url.database if url.get_backend_name() == "sqlite" else None))
    return turn if turn.path is None else _TurnFor(turn, writer)


def holding_writer_turn(writer: str):
    """Decorate a function that writes in one transaction and commits: it runs holding the
    :func:`writer_turn` (counted for ``writer``), so on SQLite it never waits in SQLite's sleeping
    lock wait, nor makes the event batches wait there (background writers: the journeys' triggers
    and step runner)."""
    import functools

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with writer_turn(writer):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


def sqlite_time(value) -> str | None:
    """A naive UTC datetime as SQLAlchemy's SQLite ``DateTime`` stores it (always with microseconds)."""
    if value is None:
        return None
    return value.isoformat(" ", "microseconds")  # naive: no offset; the same text as "%Y-%m-%d %H:%M:%S.%f"


def sqlite_insert_rows(table: str, columns: tuple[tuple[str, str], ...], rows: list[tuple], suffix: str = "", chunk: int = 500,
                       stored: bool = False) -> list[tuple]:
    """Insert ``rows`` (tuples in the order of ``columns``) on SQLite with multi-row statements on
    the driver's cursor (the session's connection, in its transaction), stored as SQLAlchemy
    would store them (``json`` columns as JSON text, ``timestamp`` ones as its text; with
    ``stored`` the rows hold those texts already: converted by the caller, e.g. before it took
    the writer turn). Returns what ``suffix``'s ``RETURNING`` gives, if any.

    Through SQLAlchemy, binding the parameters (each row's values processed one by one, the
    statement's parameter list rebuilt per row) cost more than SQLite spent storing the rows.
    Rows are tuples, not dicts: only the columns that need a conversion are touched, and a
    chunk's parameters are one flattened list.
    """
    import json
    from itertools import chain

    names = ", ".join(name for name, _kind in columns)
    convert = [] if stored else [(i, json.dumps if kind == "json" else sqlite_time) for i, (_name, kind) in enumerate(columns)
                                 if kind in ("json", "timestamp")]
    one = "(" + ", ".join("?" * len(columns)) + ")"
    cursor = db.session.connection().connection.driver_connection.cursor()
    returning = "RETURNING" in suffix.upper()
    out: list[tuple] = []
    try:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            if convert:
                fixed = []
                for row in part:
                    row = list(row)
                    for i, f in convert:
                        row[i] = f(row[i])
                    fixed.append(row)
                part = fixed
            cursor.execute(f"INSERT INTO {table} ({names}) VALUES {', '.join([one] * len(part))} {suffix}", list(chain.from_iterable(part)))
            if returning:
                out.extend(cursor.fetchall())
    finally:
        cursor.close()
    return out


def ping_idle_connections(engine, idle_seconds: float) -> None:
    """Test a pooled connection before use only when it has been idle for ``idle_seconds``
    (the ``DATABASE_PING_IDLE_SECONDS`` setting).

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: one extra round trip per
    request, a tenth of a recommendation's cost on PostgreSQL. A connection used
    moments ago is almost always still alive, and the one that is not (the database
    restarted under load) fails its statement instead: SQLAlchemy then drops every
    connection of the pool opened before the failure, the request answers 503 (the
    widget sends again), and the read-only recommendation path retries on a fresh
    connection by itself (:class:`personalize.recommend.service.DriverQuery`). An idle
    connection, the usual victim of a restart at a quiet hour or of a firewall's
    timeout, is pinged first and replaced if dead, so no request sees it fail.
    """
    import time

    from sqlalchemy import event
    from sqlalchemy.exc import DisconnectionError

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection, record) -> None:
        if record is not None:
            record.info["personalize_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
        since = record.info.pop("personalize_idle_since", None)
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # the pool drops this connection and checks out another (a new one if need be)
            raise DisconnectionError(f"idle connection is gone: {error}") from error


class ReadConnections:
    """Database connections kept ready for requests that only read (a recommendation).

    Checking a connection out of SQLAlchemy's pool and back in for every request,
    switching it to autocommit and back, and resetting it on its return, cost a
    recommendation on PostgreSQL about 6 % of the web process's CPU (1.01 → 0.95 ms per
    request when this replaced it; see docs/deployment.md, "What changed"). These
    connections are instead taken from the pool once,
    detached from it, set to autocommit (each read is a statement of its own: no
    BEGIN and no ROLLBACK round trips), and kept in a free list with a cursor: a
    request takes one and gives it back. A process keeps at most as many as it ever
    ran such requests at once (its threads); a forked child never uses its parent's;
    ``engine.dispose()`` closes them.

    A kept connection the database dropped (it restarted, or an idle timeout) fails
    its statement: the reader then calls :meth:`discard`, which closes it and every
    other kept connection, opened before the failure and likely gone too, and reads
    again on a fresh one (see :class:`personalize.recommend.service.DriverQuery`).
    """

    def __init__(self, engine):
        from sqlalchemy import event

        self.engine = engine
        self.dialect = engine.dialect
        self._free: list[tuple] = []
        self._pid = os.getpid()
        self._generation = 0  # raised by dispose(): connections taken before it are closed when given back
        event.listen(engine, "engine_disposed", self._disposed)

    def take(self) -> tuple:
        """``(driver connection, cursor, generation)`` outside any transaction, for this thread
        until :meth:`give_back`. The cursor stays with its connection: psycopg runs a statement
        on a cursor reused faster than on a new one."""
        if self._pid != os.getpid():  # a forked process: those sockets are the parent's
            self._free, self._pid = [], os.getpid()
        try:
            return self._free.pop()  # list.pop and list.append are atomic: no lock needed
        except IndexError:
            pass
        fairy = self.engine.raw_connection()  # the pool's connect events ran (SQLite pragmas, timeouts)
        fairy.detach()  # from now on ours: the pool opens another in its place when it needs one
        connection = fairy.dbapi_connection
        try:
            if self.dialect.name == "postgresql":
                connection.autocommit = True
            return connection, connection.cursor(), self._generation
        except Exception:
            _close_quietly(connection)
            raise

    def give_back(self, kept: tuple) -> None:
        # one found inside a transaction was never expected (only SELECTs run here): a fresh start is safer
        if kept[2] != self._generation or _in_transaction(kept[0]):
            _close_quietly(kept[0])
            return
        self._free.append(kept)

    def discard(self, kept: tuple) -> None:
        """Close ``kept``, found dead, and every other kept connection (opened before it failed)."""
        _close_quietly(kept[0])
        self.close()

    def close(self) -> None:
        old, self._free = self._free, []
        for kept in old:
            _close_quietly(kept[0])

    def _disposed(self, _engine) -> None:
        self._generation += 1
        self.close()


def _in_transaction(connection) -> bool:
    status = getattr(getattr(connection, "info", None), "transaction_status", None)
    if status is not None:  # psycopg: 0 is IDLE (a closed connection says UNKNOWN)
        return int(status) != 0
    return bool(getattr(connection, "in_transaction", False))  # sqlite3


def _close_quietly(connection) -> None:
    try:
        connection.close()
    except Exception as error:  # noqa: BLE001  (a connection already broken has nothing left to close)
        log.debug("closing a dead read connection: %s", error)


MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(app: Flask, revision: str = "head") -> None:
    """Bring the app's database schema up to ``revision`` (creating it if empty)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    with app.app_context():
        engine = db.engine
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # Migrations re-create SQLite tables (copy, drop, rename); with foreign keys on, the drop
                # would delete every row pointing at the table (ON DELETE CASCADE). SQLite changes the
                # setting only outside a transaction, so before the migrations begin one.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            try:
                with connection.begin():
                    before = MigrationContext.configure(connection).get_current_revision()
                    cfg.attributes["connection"] = connection
                    command.upgrade(cfg, revision)
                    after = MigrationContext.configure(connection).get_current_revision()
                    if sqlite and after != before:
                        _check_foreign_keys(connection)
                    if after != before:  # Alembic's own lines are quiet below DEBUG (personalize.logs)
                        log.info("database schema upgraded from %s to %s", before or "empty", after)
            finally:
                if sqlite:
                    connection.exec_driver_sql("PRAGMA foreign_keys=ON")  # the pool hands this connection out again
                    connection.commit()


def _check_foreign_keys(connection) -> None:
    """Fail (and roll the migration back) if a re-created SQLite table left a row pointing at nothing."""
    dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if dangling:
        tables = sorted({row[0] for row in dangling})
        raise RuntimeError(f"the migration left {len(dangling)} rows pointing at missing rows (tables: {', '.join(tables)})")


def current_revision(app: Flask) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with app.app_context(), db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


_IGNORING: dict[tuple, object] = {}  # built statements by (dialect, table, conflict columns, returning)


def refresh_statistics(*models) -> None:
    """After a bulk load, tell the database's query planner what the tables now hold.

    PostgreSQL plans from statistics that autovacuum refreshes only some time after
    a large import (or never, where it is turned off): until then it may take a table
    of half a million rows for an empty one and pick plans a thousand times slower.
    SQLite's ``PRAGMA optimize`` does the same where it is worth it.
    """
    from sqlalchemy import text

    engine = db.engine
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            for model in models:
                connection.execute(text(f'ANALYZE "{model.__table__.name}"'))
        elif engine.dialect.name == "sqlite":
            connection.execute(text("PRAGMA optimize"))
            connection.commit()


def maintenance_warnings() -> list[str]:
    """What an operator should fix in the database's own upkeep (said by ``personalize serve`` at start).

    PostgreSQL with autovacuum turned off keeps every dead row version and never
    refreshes the planner's statistics: measured here, events/s fell from about 2,400 to
    1,500 over five benchmark runs, and came back with one ``VACUUM ANALYZE``.
    """
    from sqlalchemy import text

    engine = db.engine
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as connection:
        if connection.execute(text("SHOW autovacuum")).scalar() == "off":
            return ["PostgreSQL's autovacuum is off: tables keep their dead rows and query plans go stale as events "
                    "arrive. Turn it on (autovacuum = on in postgresql.conf), or run VACUUM ANALYZE from cron every hour."]
    return []


def insert_ignoring_conflicts(model, rows: list[dict], conflict_columns: list[str], returning=()):
    """``INSERT … ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL; returns the inserted rows' ``returning`` columns.

    Runs on the session's connection (in its transaction) as a plain table insert: the
    statement is built once per shape, and the rows skip the ORM's bulk machinery.
    """
    if not rows:
        return []
    if db.session.autoflush:  # as an ORM statement would: pending objects (a new profile…) reach the database first
        db.session.flush()
    connection = db.session.connection()
    dialect = connection.dialect.name
    table = getattr(model, "__table__", model)
    returning = tuple(getattr(col, "key", col) for col in returning)
    shape = (dialect, table, tuple(conflict_columns), returning)
    stmt = _IGNORING.get(shape)
    if stmt is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # pragma: no cover - other databases are not supported yet
            raise RuntimeError(f"database {dialect!r} is not supported; use SQLite or PostgreSQL")
        stmt = insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
        if returning:
            stmt = stmt.returning(*(table.c[name] for name in returning))
        _IGNORING[shape] = stmt
    if returning:
        out = []
        # rows skipped by a conflict return nothing, so callers match results by key, not position
        for start in range(0, len(rows), 500):
            out.extend(connection.execute(stmt, rows[start : start + 500]).all())
        return out
    connection.execute(stmt, rows)
    return []
