"""The holdout group and an experiment's arm follow the person, not the id a request names them by.

A widget asks by visitor id, a server by email or customer id (secret key); identification and
merges join ids to one profile. Every one of those requests must put the person in the same
holdout group and the same arm: the profile's ``assignment_key`` decides, set once when the
profile was created; someone without a profile yet is decided by the key their profile will get.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from sqlalchemy import text

from personalize.app import create_app
from personalize.db import alembic_config, current_revision, db, upgrade
from personalize.experiments.arms import arm_of_rec_id
from personalize.experiments.report import experiment_report
from personalize.experiments.store import create_experiment, start_experiment
from personalize.insights import set_holdout_share
from personalize.models import Profile, Site
from personalize.profiles import ingest_events
from personalize.profiles.identity import lookup
from personalize.profiles.merge import link_identity, merge_profiles, resolve_contact
from personalize.profiles.privacy import erase_profile, export_profile
from personalize.testing import app_config, fresh_database

PEOPLE = 24
TEST = {"name": "Best sellers test", "slot": "home", "metric": "conversion",
        "arms": [{"name": "As today", "override": {}}, {"name": "Best sellers", "override": {"strategy": "popular"}}]}


def _site(info) -> Site:
    return db.session.get(Site, info.id)


def _widget(client, site, visitor, slot="home"):
    r = client.get("/api/v1/recommendations", query_string={"key": site.public_key, "visitor": visitor, "slot": slot, "limit": 3})
    assert r.status_code == 200, r.json
    return r.json


def _server(client, site, slot="home", **person):
    r = client.get("/api/v1/recommendations", query_string={"slot": slot, "limit": 3, **person},
                   headers={"Authorization": f"Bearer {site.secret_key}"})
    assert r.status_code == 200, r.json
    return r.json


def _group(body) -> tuple:
    """What the assignment decided for one list: the holdout, or the experiment's arm (None outside one)."""
    return ("holdout",) if body["strategy"] == "holdout" else ("arm", arm_of_rec_id(body["rec_id"]))


def _known_people(client, site, n=PEOPLE):
    """``n`` widget visitors who browsed, then logged in (identify with email and customer id)."""
    t = int(time.time() * 1000)
    events = []
    for i in range(n):
        events.append({"id": f"pv-{i}", "type": "product_viewed", "visitor": f"person-{i}", "product_id": "run-shoe", "ts": t + i})
        events.append({"id": f"id-{i}", "type": "identify", "visitor": f"person-{i}", "email": f"person{i}@example.com",
                       "customer_id": f"c-{i}", "ts": t + i + 1})
    r = client.post("/api/v1/events", json={"key": site.public_key, "events": events})
    assert r.status_code == 202, r.json
    return [(f"person-{i}", f"person{i}@example.com", f"c-{i}") for i in range(n)]


def test_one_person_is_in_one_holdout_group_whichever_id_asks(client, trained):
    set_holdout_share(_site(trained), 0.5)
    held = 0
    for visitor, email, customer in _known_people(client, trained):
        by_visitor = _group(_widget(client, trained, visitor))
        assert _group(_server(client, trained, email=email.upper())) == by_visitor, (visitor, email)
        assert _group(_server(client, trained, customer_id=customer)) == by_visitor, (visitor, customer)
        held += by_visitor == ("holdout",)
    assert 0 < held < PEOPLE  # both groups were reached


def test_one_person_is_in_one_arm_whichever_id_asks(client, trained):
    experiment = start_experiment(_site(trained), create_experiment(_site(trained), TEST))
    arms = set()
    for visitor, email, customer in _known_people(client, trained):
        by_visitor = _group(_widget(client, trained, visitor))
        assert by_visitor[1][0] == experiment.id
        assert _group(_server(client, trained, email=email)) == by_visitor, (visitor, email)
        assert _group(_server(client, trained, customer_id=customer)) == by_visitor, (visitor, customer)
        arms.add(by_visitor[1][1])
    assert arms == {0, 1}


def test_the_first_request_of_someone_unknown_agrees_with_their_profile_later(client, trained):
    site = _site(trained)
    set_holdout_share(site, 0.3)
    start_experiment(site, create_experiment(site, TEST))
    for i in range(PEOPLE):
        # a server asks for a person nobody knows yet; then a connector brings them in
        email = f"new{i}@example.com"
        before = _group(_server(client, trained, email=email))
        pid = resolve_contact(trained.id, email=email.title(), customer_id=f"crm-{i}")
        assert db.session.get(Profile, pid).assignment_key == f"email:{email}"
        assert _group(_server(client, trained, email=email)) == before
        assert _group(_server(client, trained, customer_id=f"crm-{i}")) == before
        # a first anonymous visit, then events create the visitor's profile
        visitor = f"fresh-{i}"
        first = _group(_widget(client, trained, visitor))
        ingest_events(site, [{"id": f"fv-{i}", "type": "product_viewed", "visitor": visitor, "product_id": "tea-pot"}])
        assert lookup(trained.id, "visitor", [visitor])
        assert _group(_widget(client, trained, visitor)) == first


def test_identification_and_merges_never_change_a_persons_key(client, trained):
    site = _site(trained)
    set_holdout_share(site, 0.5)
    start_experiment(site, create_experiment(site, TEST))
    people = _known_people(client, trained)
    for visitor, _email, _customer in people:
        pid = lookup(trained.id, "visitor", [visitor])[visitor]
        assert db.session.get(Profile, pid).assignment_key == visitor  # identification kept the widget's key
    for i, (visitor, email, _customer) in enumerate(people[:8]):
        # the person logs in on a second device: a signed identify folds that visitor into their profile
        other = f"phone-{i}"
        ingest_events(site, [{"id": f"ph-{i}", "type": "product_viewed", "visitor": other, "product_id": "tea-cup"}])
        phone = lookup(trained.id, "visitor", [other])[other]
        assert db.session.get(Profile, phone).assignment_key == other
        survivor = link_identity(trained.id, phone, "signature", email=email)
        assert survivor == lookup(trained.id, "visitor", [visitor])[visitor]
        db.session.expire_all()
        assert db.session.get(Profile, survivor).assignment_key == visitor
        assert _group(_widget(client, trained, other)) == _group(_widget(client, trained, visitor)) == _group(_server(client, trained, email=email))


def test_a_merge_keeps_the_survivors_key(trained):
    site = _site(trained)
    set_holdout_share(site, 0.5)
    ingest_events(site, [{"id": f"m-{v}", "type": "product_viewed", "visitor": v, "product_id": "run-cap"} for v in ("keep-me", "fold-me")])
    keep, gone = (lookup(trained.id, "visitor", [v])[v] for v in ("keep-me", "fold-me"))
    merge_profiles(trained.id, keep, gone, "api")
    db.session.expire_all()
    assert db.session.get(Profile, keep).assignment_key == "keep-me"
    assert db.session.get(Profile, gone) is None


def test_the_report_counts_a_person_once(client, trained):
    site = _site(trained)
    experiment = start_experiment(site, create_experiment(site, TEST))
    # one person on two devices, joined by a signed identify; a second person on one device
    ingest_events(site, [{"id": "d1", "type": "identify", "visitor": "laptop", "email": "one@example.com"},
                         {"id": "d2", "type": "product_viewed", "visitor": "phone", "product_id": "run-gel"},
                         {"id": "d3", "type": "product_viewed", "visitor": "someone-else", "product_id": "tea-pot"}])
    link_identity(trained.id, lookup(trained.id, "visitor", ["phone"])["phone"], "signature", email="one@example.com")
    t = int(time.time() * 1000)
    events = []
    for n, visitor in enumerate(("laptop", "phone", "phone", "someone-else")):
        body = _widget(client, trained, visitor)
        events.append({"id": f"imp-{n}", "type": "rec_impression", "visitor": visitor, "rec_id": body["rec_id"], "slot": "home",
                       "strategy": body["strategy"], "items": [i["id"] for i in body["items"]], "ts": t + n})
        events.append({"id": f"clk-{n}", "type": "rec_clicked", "visitor": visitor, "rec_id": body["rec_id"], "slot": "home",
                       "product_id": body["items"][0]["id"], "position": 1, "strategy": body["strategy"], "ts": t + n})
    events.append({"id": "ord-1", "type": "order_completed", "visitor": "phone", "order_id": "o-one", "revenue": 40.0,
                   "items": [{"product_id": "run-gel", "quantity": 2, "price": 20.0}], "ts": t + 10})
    ingest_events(site, events)
    report = experiment_report(experiment)
    assert report.visitors == 2
    assert sum(a.totals.lists for a in report.arms) == 4
    assert sum(a.totals.clickers for a in report.arms) == 2
    assert sum(a.totals.buyers for a in report.arms) == 1
    assert sum(a.totals.revenue for a in report.arms) == pytest.approx(40.0)


def test_rank_and_the_email_block_keep_a_held_out_person_out(client, trained):
    from personalize.recommend.channels import contact_recommendations

    site = _site(trained)
    set_holdout_share(site, 0.5)
    seen = set()
    for visitor, email, _customer in _known_people(client, trained, 12):
        held = _widget(client, trained, visitor)["strategy"] == "holdout"
        products = ["tea-cup", "run-sock", "tea-pot", "run-shoe"]
        r = client.post("/api/v1/rank", json={"key": trained.public_key, "visitor": visitor, "products": products})
        assert r.status_code == 200, r.json
        assert (r.json["strategy"] == "holdout") == held
        if held:
            assert r.json["products"] == products  # the shop's own order
        pid = lookup(trained.id, "email", [email])[email]
        _live, listed = contact_recommendations(site, pid, 3)
        assert (listed.strategy == "holdout") == held
        seen.add(held)
    assert seen == {True, False}


def test_export_shows_the_key_and_erase_removes_it(client, trained):
    (visitor, email, _customer), = _known_people(client, trained, 1)
    pid = lookup(trained.id, "visitor", [visitor])[visitor]
    assert export_profile(trained.id, pid)["profile"]["assignment_key"] == visitor
    erase_profile(trained.id, pid)
    assert db.session.scalar(text("SELECT count(*) FROM profiles WHERE assignment_key = :k"), {"k": visitor}) == 0


# ------------------------------------------------------------------ migration 0013

NOW = datetime(2026, 1, 5, 12, 0, 0)


@pytest.fixture
def app_at_0012(tmp_path):
    with fresh_database(tmp_path) as url:
        app = create_app(app_config(tmp_path, url, AUTO_MIGRATE=False))
        upgrade(app, "0012")
        yield app
        with app.app_context():
            db.engine.dispose()


def test_0013_gives_existing_profiles_the_key_a_new_one_would_get(app_at_0012):
    people = {  # profile id: (email column, customer id column, identities in the order they came)
        1: (None, None, [("visitor", "v-first"), ("email", "ana@example.com"), ("visitor", "v-second")]),
        2: ("ben@example.com", "c-ben", [("email", "Ben@Example.com "), ("customer_id", "c-ben")]),
        3: (None, "c-cy", [("customer_id", "c-cy")]),
        4: ("dee@example.com", None, []),
        5: (None, None, [("hubspot_id", "901")]),
        6: (None, None, []),
    }
    with app_at_0012.app_context():
        with db.engine.begin() as c:
            c.execute(text("INSERT INTO sites (id, name, public_key, allowed_origins, settings, created_at, catalog_version) "
                           "VALUES (1, 'Shop', 'pk_1', '[]', '{}', :t, 0)"), {"t": NOW})
            n = 0
            for pid, (email, customer, identities) in people.items():
                c.execute(text("INSERT INTO profiles (id, site_id, email, customer_id, attributes, created_at, last_seen_at) "
                               "VALUES (:i, 1, :e, :c, '{}', :t, :t)"), {"i": pid, "e": email, "c": customer, "t": NOW})
                for kind, value in identities:
                    n += 1
                    c.execute(text("INSERT INTO identities (id, site_id, kind, value, profile_id, created_at) VALUES (:n, 1, :k, :v, :p, :t)"),
                              {"n": n, "k": kind, "v": value, "p": pid, "t": NOW})
        db.session.remove()
    upgrade(app_at_0012, "0013")
    assert current_revision(app_at_0012) == "0013"
    with app_at_0012.app_context():
        keys = dict(db.session.execute(text("SELECT id, assignment_key FROM profiles ORDER BY id")).all())
        db.session.remove()
    assert keys == {1: "v-first", 2: "email:ben@example.com", 3: "customer_id:c-cy", 4: "email:dee@example.com",
                    5: "hubspot_id:901", 6: None}

    from alembic import command

    with app_at_0012.app_context(), db.engine.connect() as connection:  # and back down
        cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
        cfg.attributes["connection"] = connection
        with connection.begin():
            command.downgrade(cfg, "0012")
    assert current_revision(app_at_0012) == "0012"
