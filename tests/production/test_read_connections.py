"""The connections a web process keeps for recommendations (personalize.db.ReadConnections).

A recommendation reads on a connection kept between requests, outside any transaction,
instead of checking one out of the pool each time. What must hold: no kept connection
ever sits inside a transaction (on SQLite that would pin an old snapshot, on PostgreSQL
an "idle in transaction" backend), a process keeps no more of them than requests ran at
once, one the database dropped costs no request an error, ``engine.dispose()`` closes
them, and a forked process never uses its parent's.
"""

from __future__ import annotations

import os
import threading

import pytest
import sqlalchemy as sa

from personalize.db import ReadConnections, db

from .test_rankings import recs


def readers(app) -> ReadConnections:
    return app.extensions["personalize.read_connections"]


def is_open(connection) -> bool:
    try:
        connection.cursor().execute("SELECT 1").fetchall()
    except Exception:  # noqa: BLE001  (closed: each driver says so in its own words)
        return False
    return True


def test_concurrent_recommendations_keep_a_few_connections_outside_any_transaction(app, trained):
    threads, rounds = 4, 15
    start = threading.Barrier(threads)
    answers, errors = [], []

    def visitor(n: int) -> None:
        client = app.test_client()
        start.wait()
        try:
            for i in range(rounds):
                answers.append(len(recs(client, trained, f"rc-{n}-{i % 3}")["items"]))
        except Exception as error:  # noqa: BLE001  (reported below, with the others)
            errors.append(error)

    workers = [threading.Thread(target=visitor, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    assert len(answers) == threads * rounds and min(answers) == 3
    kept = list(readers(app)._free)
    assert 1 <= len(kept) <= threads, "no more connections than requests ran at once"
    for connection, _cursor, _generation in kept:
        if app.config["DATABASE_URL"].startswith("postgresql"):
            assert connection.info.transaction_status == 0  # IDLE: no BEGIN was sent
        else:
            assert not connection.in_transaction  # no read transaction pins an old snapshot of the WAL
    if app.config["DATABASE_URL"].startswith("postgresql"):
        with app.app_context(), db.engine.connect() as conn:
            idle_in_transaction = conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids) AND state <> 'idle'"
            ), {"pids": [c.info.backend_pid for c, _k, _g in kept]}).scalar()
        assert idle_in_transaction == 0


def test_a_connection_given_back_inside_a_transaction_is_closed_not_kept(app):
    pool = readers(app)
    with app.app_context():
        kept = pool.take()
        connection, cursor, _generation = kept
        if app.config["DATABASE_URL"].startswith("postgresql"):
            connection.autocommit = False  # the next statement opens a transaction
            cursor.execute("SELECT 1")
        else:
            cursor.execute("BEGIN")
        pool.give_back(kept)
        assert not is_open(connection)
        fresh = pool.take()
        assert fresh[0] is not connection
        pool.give_back(fresh)


def test_a_dropped_connection_costs_no_recommendation(app, client, trained):
    assert len(recs(client, trained, "drop-1")["items"]) == 3
    [(connection, _cursor, _generation)] = readers(app)._free
    if app.config["DATABASE_URL"].startswith("postgresql"):
        with app.app_context(), db.engine.connect() as conn:  # what a server restart does to it
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": connection.info.backend_pid})
            conn.commit()
    else:
        connection.close()  # SQLite cannot drop a connection; a closed handle fails the same way
    assert len(recs(client, trained, "drop-2")["items"]) == 3
    assert all(kept[0] is not connection for kept in readers(app)._free)


def test_dispose_closes_kept_connections_and_those_given_back_later(app, client, trained):
    recs(client, trained, "dispose-1")
    with app.app_context():
        first, busy = readers(app).take(), readers(app).take()  # busy: a request still running at the dispose
        readers(app).give_back(first)
        idle = first[0]
        db.engine.dispose()
        assert not is_open(idle)
        readers(app).give_back(busy)
        assert not is_open(busy[0]), "taken before the dispose: closed when given back"
        assert readers(app)._free == []
    assert len(recs(client, trained, "dispose-2")["items"]) == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_process_opens_its_own_connection(app, client, trained):
    recs(client, trained, "fork-1")
    [(parent_connection, _cursor, _generation)] = readers(app)._free
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never close anything of the parent's, leave at once
        try:
            with app.app_context():
                kept = readers(app).take()
                os.write(write_end, b"own" if kept[0] is not parent_connection else b"parent's")
        except BaseException as error:  # noqa: BLE001
            os.write(write_end, repr(error).encode()[:200])
        finally:
            os._exit(0)
    os.close(write_end)
    said = os.read(read_end, 300).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert said == "own"
    assert is_open(parent_connection), "the parent's connection still works"
    assert len(recs(client, trained, "fork-2")["items"]) == 3
