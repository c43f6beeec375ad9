"""The experiments pages over HTTP: set up from a form (no JSON), refusals that name the field
with a 400, start, figures per version, roll out."""

from __future__ import annotations

from personalize.db import db
from personalize.experiments.models import Experiment
from personalize.models import Site

from .conftest import post

FORM = {"name": "Best sellers on the home page?", "slot": "home", "metric": "conversion", "target_visitors": "2000",
        "arm0_name": "As today", "arm0_strategy": "personal", "arm1_name": "Best sellers", "arm1_strategy": "popular",
        "arm1_weight_popular": "2", "arm1_exclude": "run-sock, tea-cup"}


def test_an_owner_sets_up_starts_and_rolls_out_an_experiment(as_owner, trained):
    client = as_owner
    page = client.get(f"/admin/sites/{trained.id}/experiments").get_data(as_text=True)
    assert "Set up an experiment" in page and "Version D" in page
    created = post(client, f"/admin/sites/{trained.id}/experiments", FORM)
    assert created.status_code == 302
    experiment = db.session.query(Experiment).one()
    assert experiment.arms[1] == {"name": "Best sellers", "override": {
        "strategy": "popular", "rules": {"weights": {"popular": 2.0}, "exclude": ["run-sock", "tea-cup"]}}}
    assert experiment.target_visitors == 2000 and experiment.metric == "conversion"
    shown = client.get(created.headers["Location"]).get_data(as_text=True)
    assert "Not started" in shown and "Best sellers, the same for everyone" in shown and "never shows run-sock, tea-cup" in shown
    post(client, f"/admin/sites/{trained.id}/experiments/{experiment.id}/status", {"action": "start"})
    db.session.expire_all()
    assert experiment.status == "running"
    site = db.session.get(Site, trained.id)
    assert site.settings["experiments"]["running"]["home"]["id"] == experiment.id
    shown = client.get(f"/admin/sites/{trained.id}/experiments/{experiment.id}").get_data(as_text=True)
    assert "No visitor has seen this experiment" in shown and "Roll out B" in shown
    post(client, f"/admin/sites/{trained.id}/experiments/{experiment.id}/status", {"action": "rollout", "arm": "1"})
    db.session.expire_all()
    assert experiment.status == "rolled_out" and experiment.winner == 1
    assert site.settings["experiments"]["defaults"]["home"]["strategy"] == "popular"
    assert site.settings["experiments"]["running"] == {}


def test_a_bad_form_is_a_400_naming_the_field_and_keeps_what_was_typed(as_owner, trained):
    client = as_owner
    for change, words in (
        ({"name": ""}, "Name: is required"),
        ({"arm1_weight_content": "lots"}, "version B: weight of similar descriptions: 'lots' is not a number"),
        ({"arm1_weight_popular": "50"}, "version B: weight of best sellers: must be a number from 0 to 10"),
        ({"arm1_name": ""}, "Versions: give names to two versions or more"),
        ({"target_visitors": "12"}, "Visitors per version: must be a whole number from 100"),
        ({"arm1_model": "999"}, "version B: model: there is no stored model version 999"),
    ):
        answer = post(client, f"/admin/sites/{trained.id}/experiments", {**FORM, **change})
        assert answer.status_code == 400, change
        text = answer.get_data(as_text=True)
        assert words.lower() in text.replace("&#39;", "'").lower(), (change, text[text.find("form-error"):][:300])
        assert 'value="run-sock, tea-cup"' in text  # what was typed stays
    assert db.session.query(Experiment).count() == 0


def test_a_viewer_sees_figures_but_no_buttons(client, trained, as_owner):
    post(as_owner, f"/admin/sites/{trained.id}/experiments", FORM)
    experiment = db.session.query(Experiment).one()
    from .conftest import make_user, sign_in

    client.get("/admin/logout")
    make_user("viewer@shop.example", "viewer", [trained.id])
    viewer = client.application.test_client()
    sign_in(viewer, "viewer@shop.example")
    page = viewer.get(f"/admin/sites/{trained.id}/experiments/{experiment.id}").get_data(as_text=True)
    assert experiment.name in page and 'id="start"' not in page
    assert "Set up an experiment" not in viewer.get(f"/admin/sites/{trained.id}/experiments").get_data(as_text=True)
