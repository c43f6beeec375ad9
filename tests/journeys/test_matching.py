"""Matching events to event triggers: compiled filters decide as the documented rules do, a
product's verdict follows the catalogue, a pause is not caught up later, and a runner with
nothing due does not write."""

from __future__ import annotations

import itertools
from dataclasses import replace

from sqlalchemy import event, select

from personalize.catalog import upsert_products
from personalize.db import db
from personalize.journeys.batches import run_due
from personalize.journeys.models import JourneyEnrollment
from personalize.journeys.store import live_journeys, set_status
from personalize.journeys.triggers import ProductFacts, catch_up_events, compile_where
from personalize.profiles import ingest_events
from personalize.records import Event, ProductRecord
from personalize.sites import get_site

from .support import T0, customer, journey, notifications_lost

WAIT = [{"id": "s1", "type": "wait", "seconds": 3600}]


def _entered(journey_id: int) -> set[int]:
    return set(db.session.scalars(select(JourneyEnrollment.profile_id).where(JourneyEnrollment.journey_id == journey_id)))


def test_product_filters_follow_the_catalogue(inline, site):
    """A trigger filter on the product is decided once per product and kept, until the catalogue
    changes: a price raised above the filter's bound lets the next viewer in at once."""
    s = get_site(site.id)
    ann, bob, cat = (customer(s, f"{n}-v", f"{n}@example.com") for n in ("ann", "bob", "cat"))
    j = journey(site.id, "dear", {"trigger": {"type": "event", "event": "product_viewed",
                                              "where": [{"field": "product.price", "op": "gte", "value": 100}]},
                                  "reentry": {"mode": "every_time"}, "control": 0, "steps": WAIT})
    ingest_events(s, [{"id": "ann-view", "type": "product_viewed", "visitor": "ann-v", "product_id": "tea-pot", "ts": T0 + 10}])
    assert _entered(j.id) == set(), "the tea pot costs 45"
    pot = ProductRecord("tea-pot", "Cast iron tea pot", "/p/tea-pot", "", 45.0, "EUR", "tea")
    upsert_products(site.id, [replace(pot, price=150.0)])
    ingest_events(s, [{"id": "bob-view", "type": "product_viewed", "visitor": "bob-v", "product_id": "tea-pot", "ts": T0 + 20}])
    assert _entered(j.id) == {bob}, "the new price counts for the next event"
    upsert_products(site.id, [replace(pot, price=30.0)])
    ingest_events(s, [{"id": "cat-view", "type": "product_viewed", "visitor": "cat-v", "product_id": "tea-pot", "ts": T0 + 30}])
    assert _entered(j.id) == {bob}
    assert ann not in _entered(j.id)


def test_compiled_filters_decide_as_the_rules_say(inline, site):
    """Every operator on every kind of field, against values of every kind: the compiled test and
    the rule as documented (:func:`_where_holds`, written out plainly here) give the same answer."""
    values = [None, "", "red", "redder", 0, 5, 5.0, 7.5, True, False, [1], {"a": 1}]
    targets = {"eq": values, "neq": values, "gt": [5, 5.5], "gte": [5], "lt": [5, 7.5], "lte": [5.0], "contains": ["red", "e"],
               "in": [["red", 5], [True, "x"], []], "exists": [None]}
    fields = ["product_id", "product.category", "product.price", "properties.colour"]
    products = [None, ProductFacts("red", 5.0), ProductFacts("", None), ProductFacts("redder", 7.5)]
    checked = 0
    for name, (op, options) in itertools.product(fields, targets.items()):
        for target in options:
            cond = {"field": name, "op": op, "value": target}
            live = replace(_live_stub(), definition={"trigger": {"type": "event", "event": "x", "where": [cond]}})
            compiled = compile_where(live)
            for value, product in itertools.product(values, products):
                props = {} if value is None else {"colour": value}
                ev = Event(site.id, "e1", "x", "v", 1, None, value if isinstance(value, str) else "", properties=props)
                assert compiled.holds(ev, product) == _where_holds(cond, ev, product), (cond, value, product)
                checked += 1
    assert checked > 5000


def _where_holds(cond: dict, event, product) -> bool:
    """The filter rule for one condition, spelled out step by step: the oracle."""
    name, op, target = cond["field"], cond["op"], cond.get("value")
    if name == "product_id":
        value = event.product_id or None
    elif name == "product.category":
        value = product.category if product is not None else None
    elif name == "product.price":
        value = product.price if product is not None else None
    else:
        value = (event.properties or {}).get(name[11:])
    if op == "exists":
        return value not in (None, "")
    if value is None:
        return False
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if op in ("gt", "gte", "lt", "lte"):
        if not numeric:
            return False
        if op == "gt":
            return value > target
        if op == "gte":
            return value >= target
        return value < target if op == "lt" else value <= target
    if op == "contains":
        return isinstance(value, str) and target in value
    same = (lambda a, b: type(a) is type(b) and a == b) if not numeric else (lambda a, b: isinstance(b, int | float) and not isinstance(b, bool) and a == b)
    if op == "in":
        return any(same(value, t) for t in target)
    return same(value, target) if op == "eq" else not same(value, target)


def _live_stub():
    from datetime import datetime

    from personalize.journeys.definition import Flow
    from personalize.journeys.store import LiveJourney

    definition = {"trigger": {"type": "event", "event": "x"}, "steps": []}
    return LiveJourney(1, 1, "k", "k", 1, definition, Flow.of(definition), datetime(2026, 1, 1))


def _paused_views(app, site, clock):
    """Ann and bob, and a journey of product views that the catch-up has started on, now paused."""
    s = get_site(site.id)
    app.config["JOURNEY_INBOX"] = "inline"
    ann, bob = (customer(s, f"{n}-v", f"{n}@example.com") for n in ("ann", "bob"))
    j = journey(site.id, "views", {"trigger": {"type": "event", "event": "product_viewed"}, "reentry": {"mode": "every_time"},
                                   "control": 0, "steps": WAIT})
    catch_up_events(clock.now)  # the cursor starts at the newest event
    set_status(j, "paused")
    return s, ann, bob, j


def test_events_stored_while_every_journey_was_paused_do_not_enter_anyone_later(app, site, clock):
    """What happens while a journey is paused is not caught up when it is active again, even
    when no journey at all was live meanwhile (the catch-up's cursor did not move then)."""
    s, ann, bob, j = _paused_views(app, site, clock)
    ingest_events(s, [{"id": "ann-view", "type": "product_viewed", "visitor": "ann-v", "product_id": "tea-pot", "ts": T0 + 10}])
    clock.advance(seconds=120)
    set_status(j, "active")
    assert catch_up_events(clock.advance(seconds=61)) == 0, "ann viewed while the journey was paused"
    assert _entered(j.id) == set()
    ingest_events(s, [{"id": "bob-view", "type": "product_viewed", "visitor": "bob-v", "product_id": "tea-pot", "ts": T0 + 20}])
    assert _entered(j.id) == {bob}, "after the pause, events enter people again"
    assert ann not in _entered(j.id)


def test_the_catch_up_still_enters_for_what_came_after_the_activation(app, site, clock):
    """The pause rule leaves the catch-up's own work alone: an event stored after the journey was
    activated again, whose notification was lost, enters its person."""
    s = get_site(site.id)
    app.config["JOURNEY_INBOX"] = "inline"
    ann = customer(s, "ann-v", "ann@example.com")
    j = journey(site.id, "views", {"trigger": {"type": "event", "event": "product_viewed"}, "reentry": {"mode": "every_time"},
                                   "control": 0, "steps": WAIT})
    catch_up_events(clock.now)
    set_status(j, "paused")
    set_status(j, "active")
    with notifications_lost(app):  # the notification is lost
        ingest_events(s, [{"id": "ann-view", "type": "product_viewed", "visitor": "ann-v", "product_id": "tea-pot", "ts": T0 + 10}])
    assert _entered(j.id) == set()
    assert catch_up_events(clock.advance(seconds=61)) == 1
    assert _entered(j.id) == {ann}
    assert live_journeys(site.id).journeys[0].activated_at is not None


def test_the_catch_up_passes_over_what_was_stored_during_a_pause_without_reading_it(app, site, clock):
    """After a pause the catch-up moves its cursor past the events stored meanwhile (they enter
    nobody) without reading them, and still reads and enters for a lost notification after it."""
    from personalize.models import Event as EventRow

    s, ann, bob, j = _paused_views(app, site, clock)
    ingest_events(s, [{"id": f"ann-view-{i}", "type": "product_viewed", "visitor": "ann-v", "product_id": "tea-pot", "ts": T0 + i}
                      for i in range(5)])
    paused = set(db.session.scalars(select(EventRow.id).where(EventRow.event_id.like("ann-view-%"))))
    assert len(paused) == 5
    clock.advance(seconds=120)
    set_status(j, "active")
    with notifications_lost(app):  # bob's notification is lost
        ingest_events(s, [{"id": "bob-view", "type": "product_viewed", "visitor": "bob-v", "product_id": "tea-pot", "ts": T0 + 20}])
    windows: list[tuple[int, int]] = []  # (after, bound] of every read of whole event rows

    def seen(conn, cursor, statement, parameters, context, executemany):
        if "properties" in statement and "FROM events" in statement:
            values = parameters.values() if isinstance(parameters, dict) else parameters
            after, bound = sorted(v for v in values if isinstance(v, int) and not isinstance(v, bool))[:2]
            windows.append((after, bound))

    engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert catch_up_events(clock.advance(seconds=61)) == 1, "bob's lost notification is caught up"
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert _entered(j.id) == {bob}
    assert windows, "the events after the activation were read"
    assert not [i for i in paused for after, bound in windows if after < i <= bound], "the paused time's events were read"
    assert catch_up_events(clock.advance(seconds=61)) == 0


def test_a_runner_with_nothing_due_does_not_write(inline, site, clock):
    """A tick with nothing due only reads: no UPDATE (on SQLite: no write lock taken from the
    events' batches); once a step is due, it is claimed."""
    s = get_site(site.id)
    customer(s, "ann-v", "ann@example.com")
    journey(site.id, "views", {"trigger": {"type": "event", "event": "product_viewed"}, "control": 0, "steps": WAIT})
    ingest_events(s, [{"id": "ann-view", "type": "product_viewed", "visitor": "ann-v", "product_id": "tea-pot", "ts": T0 + 10}])
    writes: list[str] = []

    def seen(_conn, _cursor, statement, _params, _context, _many):
        if statement.lstrip().split(None, 1)[0].upper() in ("UPDATE", "INSERT", "DELETE"):
            writes.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert run_due(now=clock.now).claimed == 0, "the wait takes an hour"
        assert writes == []
        assert run_due(now=clock.advance(seconds=3601)).claimed == 1
        assert any(w.lstrip().upper().startswith("UPDATE") for w in writes)
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_the_preview_applies_the_trigger_filters(inline, site):
    """Who would enter now, for an event trigger with a filter on the catalogue: only the people
    whose event passes it (the same compiled filters the listener uses)."""
    from personalize.journeys.preview import preview

    s = get_site(site.id)
    upsert_products(site.id, [ProductRecord("pot", "Tea pot", "/p/pot", "", 150.0, "EUR", "tea"),
                              ProductRecord("cup", "Tea cup", "/p/cup", "", 9.0, "EUR", "tea")])
    for name in ("dee", "eve"):
        customer(s, f"{name}-v", f"{name}@example.com")
    ingest_events(s, [{"id": "dee-view", "type": "product_viewed", "visitor": "dee-v", "product_id": "pot", "ts": T0 + 10},
                      {"id": "eve-view", "type": "product_viewed", "visitor": "eve-v", "product_id": "cup", "ts": T0 + 20}])
    definition = {"trigger": {"type": "event", "event": "product_viewed", "where": [{"field": "product.price", "op": "gte", "value": 100}]},
                  "reentry": {"mode": "every_time"}, "control": 0, "steps": WAIT}
    assert preview(site.id, definition).count == 1
    definition["trigger"]["where"] = [{"field": "product.category", "op": "eq", "value": "tea"}]
    assert preview(site.id, definition).count == 2


def test_a_process_remembers_whom_it_decided_per_journey_until_the_time_runs_out_and_within_its_size():
    from personalize.journeys.triggers import Decided

    memory = Decided(size=5)
    memory.note(1, [10, 11], until=100.0)
    memory.note(2, [10], until=50.0)
    assert memory.known(1, 10, 99.0) and memory.known(1, 11, 99.0) and memory.known(2, 10, 49.0)
    assert not memory.known(1, 10, 100.0)  # the time ran out
    assert not memory.known(2, 11, 0.0) and not memory.known(3, 10, 0.0)  # another person, another journey
    memory.note(1, [10], until=200.0)  # decided again: trusted longer, not counted twice
    assert memory.known(1, 10, 150.0) and memory.count == 3
    assert memory.known(1, 11, 99.0) and not memory.known(1, 11, 100.0) and not memory.known(3, 10, 0.0)  # the others as they were
    memory.note(3, [1, 2, 3], until=100.0)  # past its size: everything before is forgotten
    assert not memory.known(1, 10, 0.0) and memory.known(3, 1, 0.0) and memory.count == 3
