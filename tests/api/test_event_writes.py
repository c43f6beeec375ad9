"""How events are written: times as every other writer stores them, and one writing process at a time on SQLite."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime

import pytest
from sqlalchemy import select

from personalize.db import TURN_HELD, TURN_WAITED, TURNS, db, writer_turn
from personalize.models import Event, Interaction


def test_event_and_interaction_times_read_back_exactly_on_a_whole_second(client, site):
    # 2024-03-01T10:00:00.000Z: no microseconds, the case a plain str() of a datetime writes differently
    r = client.post("/api/v1/events", data=json.dumps({"key": site.public_key, "events": [
        {"id": "w1", "type": "product_viewed", "visitor": "vw", "product_id": "run-shoe", "ts": 1709287200000},
        {"id": "w2", "type": "product_viewed", "visitor": "vw", "product_id": "run-shoe", "ts": 1709287200123},
    ]}), content_type="application/json")
    assert r.status_code == 202, r.get_json()
    times = dict(db.session.execute(select(Event.event_id, Event.occurred_at).where(Event.event_id.in_(["w1", "w2"]))).all())
    assert times == {"w1": datetime(2024, 3, 1, 10, 0, 0), "w2": datetime(2024, 3, 1, 10, 0, 0, 123000)}
    # ordered and compared as times by the database, beside rows the ORM wrote
    newest = db.session.scalars(select(Interaction.occurred_at).where(
        Interaction.occurred_at >= datetime(2024, 3, 1, 10, 0, 0), Interaction.occurred_at < datetime(2024, 3, 1, 10, 0, 1)
    ).order_by(Interaction.occurred_at.desc())).all()
    assert newest == [datetime(2024, 3, 1, 10, 0, 0, 123000), datetime(2024, 3, 1, 10, 0, 0)]


HOLD = """
import fcntl, sys
with open(sys.argv[1], "a") as f:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("busy")
    else:
        print("free")
"""


def test_the_sqlite_writer_turn_is_held_across_processes(app):
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("the writer turn orders SQLite's writers only")
        turn = writer_turn()
        assert turn.path and turn.path.endswith(".writer-lock")
        probe = lambda: subprocess.run([sys.executable, "-c", HOLD, turn.path], capture_output=True, text=True, timeout=30).stdout.strip()  # noqa: E731
        with turn:
            with turn:  # taken again by the same thread (a merge inside the events' group refreshes segments)
                nested = probe()
            inside = probe()  # still held: the outer turn has not ended
        after = probe()
    assert (nested, inside, after) == ("busy", "busy", "free")


HOLD_FOR = """
import fcntl, sys, time
with open(sys.argv[1], "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _counted(metric, writer: str) -> float:
    return metric.series().get(f'{metric.name}{{writer="{writer}"}}', 0.0)


def test_the_writer_turn_counts_who_waited_and_held_it(app, client, site):
    """What /metrics shows of the SQLite writer: each writer's turns, the seconds it waited for the
    turn while another process held it, and the seconds it held it (an event batch counts as ``events``)."""
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("the writer turn orders SQLite's writers only")
        path = writer_turn().path
    before = {(m.name, w): _counted(m, w) for m in (TURN_HELD, TURN_WAITED, TURNS) for w in ("events", "journeys")}
    holder = subprocess.Popen([sys.executable, "-c", HOLD_FOR, path, "0.4"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with app.app_context():
            asked = time.perf_counter()
            with writer_turn("journeys"):
                waited = time.perf_counter() - asked
                time.sleep(0.1)
    finally:
        holder.wait(timeout=30)
    r = client.post("/api/v1/events", json={"key": site.public_key, "events": [
        {"id": "turn-1", "type": "product_viewed", "visitor": "v-turn", "product_id": "run-shoe", "ts": int(time.time() * 1000)}]})
    assert r.status_code == 202, r.get_json()

    def grew(metric, writer):
        return _counted(metric, writer) - before[(metric.name, writer)]

    assert waited >= 0.2  # the other process held it
    assert grew(TURN_WAITED, "journeys") == pytest.approx(waited, abs=0.05)
    assert 0.1 <= grew(TURN_HELD, "journeys") < 0.1 + 0.5
    assert grew(TURNS, "journeys") == 1
    assert grew(TURNS, "events") >= 1 and grew(TURN_HELD, "events") > 0
