"""Experiments end to end on the real service: assignment, per-arm lists, attribution to arms,
the holdout as the outer control, roll-out and validation."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from personalize.db import db
from personalize.experiments.arms import ArmError, arm_index, arm_of_rec_id, clean_override
from personalize.experiments.report import experiment_report
from personalize.experiments.store import (
    ExperimentError,
    create_experiment,
    roll_out,
    start_experiment,
    stop_experiment,
)
from personalize.insights import set_holdout_share
from personalize.models import ModelVersion, Site
from personalize.profiles import ingest_events
from personalize.recommend.service import recommend_for, train_site

POPULAR_TEST = {"name": "Best sellers test", "slot": "home", "metric": "conversion",
                "arms": [{"name": "As today", "override": {}}, {"name": "Best sellers", "override": {"strategy": "popular"}}]}


def _site(info) -> Site:
    return db.session.get(Site, info.id)


def test_each_visitor_keeps_one_arm_and_the_lists_carry_it(trained):
    site = _site(trained)
    experiment = start_experiment(site, create_experiment(site, POPULAR_TEST))
    arms = Counter()
    for n in range(12):
        visitor = f"runner-{n}"
        first = recommend_for(site, visitor, slot="home", limit=4)
        again = recommend_for(site, visitor, slot="home", limit=4)
        tag = arm_of_rec_id(first.rec_id)
        assert tag == arm_of_rec_id(again.rec_id) == (experiment.id, arm_index(site.id, experiment.id, visitor, 2))
        arms[tag[1]] += 1
        # runners have a history: the control arm personalises, the challenger serves best sellers
        assert first.strategy == ("personal" if tag[1] == 0 else "popular")
    assert set(arms) == {0, 1}
    other_slot = recommend_for(site, "runner-1", slot="product", limit=4, product="run-shoe")
    assert arm_of_rec_id(other_slot.rec_id) is None  # only the experiment's slot takes part


def test_assignment_splits_evenly_and_independently_of_the_holdout():
    from personalize.insights.holdout import hash_point

    visitors = [f"v{n}" for n in range(20_000)]
    counts = Counter(arm_index(1, 7, v, 3) for v in visitors)
    assert all(abs(c / len(visitors) - 1 / 3) < 0.015 for c in counts.values())
    held = [v for v in visitors if hash_point(1, v) < 0.2]
    held_counts = Counter(arm_index(1, 7, v, 3) for v in held)
    assert all(abs(c / len(held) - 1 / 3) < 0.03 for c in held_counts.values())


def test_holdout_visitors_never_enter_an_experiment(trained):
    site = _site(trained)
    set_holdout_share(site, 0.5)
    start_experiment(site, create_experiment(site, POPULAR_TEST))
    held = tagged = 0
    for n in range(40):
        result = recommend_for(site, f"someone-{n}", slot="home", limit=3)
        if result.strategy == "holdout":
            held += 1
            assert arm_of_rec_id(result.rec_id) is None
        else:
            tagged += 1
            assert arm_of_rec_id(result.rec_id) is not None
    assert held > 5 and tagged > 5


def test_an_arm_with_its_own_rules_changes_only_its_visitors_lists(trained):
    site = _site(trained)
    experiment = start_experiment(site, create_experiment(site, {
        "name": "No socks", "slot": "home",
        "arms": [{"name": "As today", "override": {}}, {"name": "No socks", "override": {"rules": {"exclude": ["run-sock"], "weights": {"popular": 2}}}}]}))
    shown = {0: set(), 1: set()}
    for n in range(12):
        result = recommend_for(site, f"runner-{n}", slot="home", limit=6)
        shown[arm_of_rec_id(result.rec_id)[1]].update(item["id"] for item in result.items)
    assert "run-sock" in shown[0]
    assert "run-sock" not in shown[1] and shown[1]
    assert experiment.status == "running"


def test_a_model_version_arm_serves_that_model_and_keeps_its_file(trained):
    site = _site(trained)
    first = db.session.query(ModelVersion).filter_by(site_id=site.id).one()
    experiment = start_experiment(site, create_experiment(site, {
        "name": "Old model", "slot": "home",
        "arms": [{"name": "Newest", "override": {}}, {"name": "First model", "override": {"model_version": first.id}}]}))
    for _ in range(4):
        time.sleep(0.01)
        train_site(site.id)  # older files are pruned: not the one the arm serves
    assert Path(first.path).exists()
    assert db.session.get(ModelVersion, first.id) is not None
    served = {arm_of_rec_id(recommend_for(site, f"tea-{n}", slot="home", limit=3).rec_id)[1] for n in range(12)}
    assert served == {0, 1}
    stop_experiment(site, experiment)
    train_site(site.id)
    assert not Path(first.path).exists()  # no longer needed: pruned as usual


def _exposures(site, visitors, slot="home"):
    """Show each visitor a list and send back what a widget would: impression, and for some a click and an order."""
    events, served = [], {}
    t = int(time.time() * 1000)
    for n, visitor in enumerate(visitors):
        result = recommend_for(site, visitor, slot=slot, limit=3)
        served[visitor] = result
        pid = result.items[0]["id"]
        events.append({"id": f"{visitor}-imp", "type": "rec_impression", "visitor": visitor, "rec_id": result.rec_id, "slot": slot,
                       "strategy": result.strategy, "items": [i["id"] for i in result.items], "ts": t + n})
        if n % 2 == 0:
            events.append({"id": f"{visitor}-clk", "type": "rec_clicked", "visitor": visitor, "rec_id": result.rec_id, "slot": slot,
                           "product_id": pid, "position": 1, "strategy": result.strategy, "ts": t + n + 1})
        if n % 4 == 0:
            events.append({"id": f"{visitor}-ord", "type": "order_completed", "visitor": visitor, "order_id": f"o-{visitor}", "rec_id": result.rec_id,
                           "revenue": 30.0, "items": [{"product_id": pid, "quantity": 1, "price": 30.0}], "ts": t + n + 2})
    ingest_events(site, events)
    return served


def test_impressions_clicks_and_orders_count_for_the_arm_that_was_shown(trained):
    site = _site(trained)
    experiment = start_experiment(site, create_experiment(site, POPULAR_TEST))
    visitors = [f"shopper-{n}" for n in range(40)]
    served = _exposures(site, visitors)
    report = experiment_report(experiment)
    expected = Counter(arm_of_rec_id(served[v].rec_id)[1] for v in visitors)
    clicked = Counter(arm_of_rec_id(served[v].rec_id)[1] for n, v in enumerate(visitors) if n % 2 == 0)
    bought = Counter(arm_of_rec_id(served[v].rec_id)[1] for n, v in enumerate(visitors) if n % 4 == 0)
    for arm in report.arms:
        assert arm.totals.visitors == expected[arm.index]
        assert arm.totals.lists == expected[arm.index]
        assert arm.totals.clicks == arm.totals.clickers == clicked[arm.index]
        assert arm.totals.buyers == arm.attributed_orders == bought[arm.index]
        assert arm.totals.revenue == pytest.approx(30.0 * bought[arm.index])
        assert arm.totals.revenue_squares == pytest.approx(900.0 * bought[arm.index])
    assert report.arms[1].against_control["conversion"].verdict == "early"  # 40 visitors: no interval yet
    assert report.leader() is None


def test_rolling_out_makes_the_winner_what_everyone_sees_and_ends_the_experiment(trained):
    site = _site(trained)
    experiment = start_experiment(site, create_experiment(site, POPULAR_TEST))
    roll_out(site, experiment, 1)
    assert experiment.status == "rolled_out" and experiment.winner == 1 and experiment.stopped_at is not None
    for n in range(8):
        result = recommend_for(site, f"runner-{n}", slot="home", limit=3)
        assert result.strategy == "popular"
        assert arm_of_rec_id(result.rec_id) is None
    assert recommend_for(site, "runner-1", slot="product", limit=3, product="run-shoe").strategy == "similar", "other slots keep their own list"
    # a new experiment on the slot builds on the rolled-out version: an empty override is the slot as served now
    again = start_experiment(site, create_experiment(site, {**POPULAR_TEST, "name": "Again",
                                                            "arms": [{"name": "As now", "override": {}},
                                                                     {"name": "Personal", "override": {"strategy": "personal"}}]}))
    strategies = {arm_of_rec_id(r.rec_id)[1]: r.strategy for r in (recommend_for(site, f"runner-{n}", slot="home", limit=3) for n in range(12))}
    assert again.status == "running"
    assert strategies == {0: "popular", 1: "personal"}


def test_one_running_experiment_per_slot_and_a_clear_life_cycle(trained):
    site = _site(trained)
    first = start_experiment(site, create_experiment(site, POPULAR_TEST))
    second = create_experiment(site, {**POPULAR_TEST, "name": "Second"})
    with pytest.raises(ExperimentError) as busy:
        start_experiment(site, second)
    assert busy.value.field == "slot" and busy.value.status == 409
    with pytest.raises(ExperimentError) as again:
        start_experiment(site, first)
    assert again.value.field == "status"
    with pytest.raises(ExperimentError) as arm:
        roll_out(site, first, 5)
    assert arm.value.field == "arm"


@pytest.mark.parametrize(("change", "field"), [
    ({"name": ""}, "name"),
    ({"slot": "home page!"}, "slot"),
    ({"metric": "happiness"}, "metric"),
    ({"target_visitors": 5}, "target_visitors"),
    ({"arms": [{"name": "Only one", "override": {}}]}, "arms"),
    ({"arms": [{"name": "A", "override": {}}, {"name": "a", "override": {}}]}, "arms[1].name"),
    ({"arms": [{"name": "A", "override": {}}, {"name": "B", "override": {"strategy": "magic"}}]}, "arms[1].override.strategy"),
    ({"arms": [{"name": "A", "override": {}}, {"name": "B", "override": {"colour": "red"}}]}, "arms[1].override.colour"),
    ({"arms": [{"name": "A", "override": {}}, {"name": "B", "override": {"rules": {"weights": {"magic": 2}}}}]}, "arms[1].override.rules.weights.magic"),
    ({"arms": [{"name": "A", "override": {}}, {"name": "B", "override": {"rules": {"weights": {"popular": 99}}}}]}, "arms[1].override.rules.weights.popular"),
    ({"arms": [{"name": "A", "override": {}}, {"name": "B", "override": {"model_version": 999}}]}, "arms[1].override.model_version"),
    ({"arms": [{"name": "A", "override": {}}, {"name": "B", "override": {"rules": {"exclude": "run-sock"}}}]}, "arms[1].override.rules.exclude"),
])
def test_bad_definitions_are_refused_naming_the_field(trained, change, field):
    site = _site(trained)
    with pytest.raises(ExperimentError) as refused:
        create_experiment(site, {**POPULAR_TEST, **change})
    assert refused.value.field == field


def test_overrides_are_normalised():
    assert clean_override({"strategy": "personal", "rules": {"weights": {"popular": 1.0}}}) == {"strategy": "personal"}
    assert clean_override({"rules": {"weights": {"popular": 1.0}}}) == {}
    assert clean_override({"strategy": "popular", "rules": {"exclude": ["a", "a"]}}) == {"strategy": "popular", "rules": {"exclude": ["a"]}}
    with pytest.raises(ArmError):
        clean_override(["strategy"])


def test_rolling_out_builds_on_the_slots_earlier_default(trained):
    site = _site(trained)
    first = start_experiment(site, create_experiment(site, {**POPULAR_TEST, "arms": [
        {"name": "As today", "override": {}}, {"name": "No socks", "override": {"rules": {"exclude": ["run-sock"]}}}]}))
    roll_out(site, first, 1)
    second = start_experiment(site, create_experiment(site, {**POPULAR_TEST, "name": "Then best sellers"}))
    roll_out(site, second, 1)
    assert site.settings["experiments"]["defaults"]["home"] == {"rules": {"exclude": ["run-sock"]}, "strategy": "popular"}
    for n in range(6):
        result = recommend_for(site, f"runner-{n}", slot="home", limit=8)
        assert result.strategy == "popular" and "run-sock" not in {i["id"] for i in result.items}
    third = start_experiment(site, create_experiment(site, {**POPULAR_TEST, "name": "Back to A", "arms": [
        {"name": "As now", "override": {}}, {"name": "Today", "override": {}}]}))
    roll_out(site, third, 0)
    assert site.settings["experiments"]["defaults"]["home"] == {"rules": {"exclude": ["run-sock"]}, "strategy": "popular"}
