"""Identity: a visitor becomes a known customer only on a trusted signal, and keeps their whole history."""

from __future__ import annotations

from sqlalchemy import func, select

from personalize.db import db
from personalize.models import Event, Identity, Interaction, Profile
from personalize.profiles import ingest_events, profile_for_visitor
from personalize.profiles.merge import (
    MAX_MERGES,
    MergeRefused,
    merge_profiles,
    resolve_contact,
    resolve_profile_id,
)
from personalize.profiles.trust import make_token, sign_identity, signing_secret
from personalize.sites import get_site

T = 1_760_000_000_000


def browse(site, visitor: str, products: list[str], start: int = 0) -> None:
    events = [
        {"id": f"{visitor}-{start + i}", "type": "product_viewed", "visitor": visitor, "product_id": pid, "ts": T + (start + i) * 1000}
        for i, pid in enumerate(products)
    ]
    ingest_events(get_site(site.id), events)


def identify(site, visitor: str, eid: str, **fields) -> None:
    ingest_events(get_site(site.id), [{"id": eid, "type": "identify", "visitor": visitor, "ts": T + 99_000, **fields}])


def count(model, **where) -> int:
    q = select(func.count()).select_from(model)
    for k, v in where.items():
        q = q.where(getattr(model, k) == v)
    return db.session.scalar(q)


def test_anonymous_history_follows_a_signed_identify(site):
    secret = signing_secret(site.id)
    # alice signed in on her laptop earlier
    browse(site, "laptop", ["tea-pot"])
    identify(site, "laptop", "id-1", email="alice@example.com", signature=sign_identity(secret, "alice@example.com", None))
    alice = profile_for_visitor(site.id, "laptop")
    # now she browses anonymously on her phone, then signs in there too
    browse(site, "phone", ["tea-cup", "tea-green", "run-cap"])
    phone_profile = profile_for_visitor(site.id, "phone")
    assert phone_profile != alice
    events_before = count(Event)
    interactions_before = count(Interaction)
    identify(site, "phone", "id-2", email="alice@example.com", signature=sign_identity(secret, "alice@example.com", None))

    assert profile_for_visitor(site.id, "phone") == alice
    assert db.session.get(Profile, phone_profile) is None
    assert resolve_profile_id(site.id, phone_profile) == alice, "the old id still resolves"
    assert count(Event, profile_id=alice) == 1 + 1 + 3 + 1
    assert count(Event) == events_before + 1, "no event lost or counted twice"
    assert count(Interaction) == interactions_before
    assert {p for (p,) in db.session.execute(select(Interaction.product_id).where(Interaction.profile_id == alice))} == {
        "tea-pot", "tea-cup", "tea-green", "run-cap"
    }
    kinds = {k for (k,) in db.session.execute(select(Identity.kind).where(Identity.profile_id == alice))}
    assert kinds == {"visitor", "email"}


def test_a_claim_alone_never_merges(site):
    secret = signing_secret(site.id)
    identify(site, "owner", "o-1", email="bob@example.com", signature=sign_identity(secret, "bob@example.com", None))
    bob = profile_for_visitor(site.id, "owner")
    browse(site, "intruder", ["tea-pot"])
    identify(site, "intruder", "i-1", email="bob@example.com")  # no proof
    identify(site, "intruder", "i-2", email="bob@example.com", signature="0" * 64)  # a wrong proof
    identify(site, "intruder", "i-3", token="bogus.token")
    intruder = profile_for_visitor(site.id, "intruder")
    assert intruder != bob
    assert count(Event, profile_id=bob) == 1
    assert db.session.get(Profile, intruder).email is None


def test_a_signed_click_through_token_identifies(site):
    resolve_contact(site.id, email="carol@example.com", attributes={"first_name": "Carol"}, source="crm")
    carol = db.session.scalar(select(Identity.profile_id).where(Identity.value == "carol@example.com"))
    browse(site, "mail-click", ["run-shoe"])
    identify(site, "mail-click", "t-1", token=make_token(site.id, email="carol@example.com"))
    assert profile_for_visitor(site.id, "mail-click") == carol
    expired = make_token(site.id, email="carol@example.com", ttl=-10)
    browse(site, "late-click", ["run-gel"])
    identify(site, "late-click", "t-2", token=expired)
    assert profile_for_visitor(site.id, "late-click") != carol


def test_customer_id_signature_and_traits(site):
    secret = signing_secret(site.id)
    browse(site, "v-traits", ["tea-pot"])
    identify(site, "v-traits", "tr-1", customer_id="C42", traits={"plan": "gold"}, signature=sign_identity(secret, None, "C42"))
    pid = profile_for_visitor(site.id, "v-traits")
    p = db.session.get(Profile, pid)
    assert p.customer_id == "C42"
    from personalize.profiles import attributes_of

    assert attributes_of(pid)["plan"]["value"] == "gold" and attributes_of(pid)["plan"]["source"] == "identify"


def test_merges_are_bounded(site):
    keep = resolve_contact(site.id, customer_id="K")
    for i in range(MAX_MERGES):
        other = resolve_contact(site.id, customer_id=f"O{i}")
        merge_profiles(site.id, keep, other, "api")
    last = resolve_contact(site.id, customer_id="LAST")
    try:
        merge_profiles(site.id, keep, last, "api")
    except MergeRefused:
        pass
    else:
        raise AssertionError("the merge bound was not enforced")


def test_connector_records_join_ids_of_one_person(site):
    a = resolve_contact(site.id, email="dan@example.com")
    b = resolve_contact(site.id, ids={"crm_id": "77"})
    assert a != b
    c = resolve_contact(site.id, email="dan@example.com", ids={"crm_id": "77"}, attributes={"tier": "b"}, source="crm")
    assert c == a and resolve_profile_id(site.id, b) == a


def test_hook_profiles_merged(app, site):
    from personalize import hookimpl

    heard = []

    class Listener:
        @hookimpl
        def profiles_merged(self, site_id, kept_profile_id, merged_profile_id, signal):
            heard.append((site_id, kept_profile_id, merged_profile_id, signal))

    app.extensions["personalize.plugins"].pm.register(Listener())
    a = resolve_contact(site.id, customer_id="A1")
    b = resolve_contact(site.id, customer_id="B1")
    merge_profiles(site.id, a, b, "api")
    assert heard == [(site.id, a, b, "api")]


def test_hook_profiles_changed(app, site):
    """New events, a changed attribute and a merge each tell plugins which profiles changed, and
    segment membership follows through the built-in segments plugin (profiles never import segments)."""
    from personalize import hookimpl
    from personalize.profiles import set_attributes
    from personalize.segments.models import SegmentMember
    from personalize.segments.store import create_segment

    heard = []

    class Listener:
        @hookimpl
        def profiles_changed(self, site_id, profile_ids):
            heard.append((site_id, sorted(profile_ids)))

    app.extensions["personalize.plugins"].pm.register(Listener())
    create_segment(site.id, {"key": "gold", "rule": {"field": "attributes.tier", "op": "eq", "value": "gold"}})
    ingest_events(get_site(site.id), [{"id": "pc-1", "type": "page_viewed", "visitor": "pc-v", "ts": 1_700_000_000_000}])
    pid = profile_for_visitor(site.id, "pc-v")
    assert heard == [(site.id, [pid])]
    set_attributes(site.id, pid, {"tier": "gold"}, "api")
    assert heard[-1] == (site.id, [pid])
    members = {m.profile_id for m in db.session.scalars(select(SegmentMember))}
    assert members == {pid}, "the segments plugin heard the change and the profile entered the segment"
    other = resolve_contact(site.id, customer_id="PC2")
    merge_profiles(site.id, pid, other, "api")
    assert heard[-1] == (site.id, [pid])
