"""Isolation and authority: every route of the app, every kind of caller, exactly what each may do.

The matrix is built from ``app.url_map``: each (endpoint, method) must have an entry in
:data:`SPECS` below, which says who may call it and how to build a request against
site A's or site B's objects. Callers (:data:`PRINCIPALS`): nobody, site A's public key,
site A's secret key, site B's secret key, site A's rotated-away secret key, admin sessions
of a viewer, an editor and an owner, and an editor who may see site B only.

For every request the test checks

* the status: allowed answers 2xx (API) or 200/redirect within the admin; refused ones
  401/403/404 in the API's JSON error shape, or the admin's sign-in redirect, 401, 403 or 404;
* leaks: no answer to a caller carries a marker of a site that caller may not see
  (names, product ids and titles, visitor ids, emails, segment and connection names,
  signing secrets), nor any secret key or connector credential at all — site-B ids
  asked for in the URL or body included (the answer may only repeat what was sent);
* writes: a refused request changes no row anywhere, and no request (allowed or not)
  changes a row of a site its caller may not see;
* no oracle: a refusal for another site's id reads exactly like the answer for an id
  that names nothing.

Separate tests cover CSRF on every admin form, webhooks, hashed keys compared in
constant time, rotation across two server instances on one database, identity proofs
of one site used on another, sign-in redirects and the server settings page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select, text

from personalize.db import db

PASSWORD = "isolation password 1"
NEW_PASSWORD = "isolation password 2"
MARK = {"a": "amark", "b": "bmark", "z": "zmark"}  # z: a site and objects that do not exist
OTHER = {"a": "b", "b": "a"}


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch):
    """The same scrypt at a low cost (production's takes 0.3 s a hash; this file signs in often)."""
    from functools import partial

    from werkzeug.security import generate_password_hash

    monkeypatch.setattr("personalize.admin.users.generate_password_hash", partial(generate_password_hash, method="scrypt:1024:8:1"))


# ------------------------------------------------------------------ the two shops


@dataclass
class World:
    site: dict[str, int] = field(default_factory=dict)
    name: dict[str, str] = field(default_factory=dict)
    public: dict[str, str] = field(default_factory=dict)
    secret: dict[str, str] = field(default_factory=dict)
    revoked: str = ""
    product: dict[str, str] = field(default_factory=dict)
    visitor: dict[str, str] = field(default_factory=dict)
    email: dict[str, str] = field(default_factory=dict)
    profile: dict[str, int] = field(default_factory=dict)  # read, changed
    merged: dict[str, int] = field(default_factory=dict)  # folded into ``profile`` by a merge
    erasable: dict[str, int] = field(default_factory=dict)  # erased by the last requests
    segment: dict[str, str] = field(default_factory=dict)
    spare_segment: dict[str, str] = field(default_factory=dict)  # deleted by the last requests
    connection: dict[str, str] = field(default_factory=dict)
    journey: dict[str, str] = field(default_factory=dict)
    spare_journey: dict[str, str] = field(default_factory=dict)  # deleted by the last requests
    experiment: dict[str, int] = field(default_factory=dict)
    spare_experiment: dict[str, int] = field(default_factory=dict)  # deleted by the last requests
    hook_secret: dict[str, str] = field(default_factory=dict)
    markers: dict[str, set[str]] = field(default_factory=dict)  # strings only that site's data holds
    secrets: set[str] = field(default_factory=set)  # strings no answer may ever hold
    users: dict[str, int] = field(default_factory=dict)
    victim: int = 0
    setup_token: str = ""  # the first run's set-up token (the page stays closed once accounts exist)
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def fresh(self, prefix: str = "n") -> str:
        return f"{prefix}{next(self.counter)}"


def _seed_site(w: World, x: str) -> None:
    from personalize.catalog import upsert_products
    from personalize.profiles import ingest_events, set_attributes
    from personalize.profiles.identity import VISITOR, lookup
    from personalize.profiles.trust import signing_secret
    from personalize.records import ProductRecord
    from personalize.segments.bulk import rebuild_segment
    from personalize.segments.store import create_segment
    from personalize.sites import create_site
    from personalize.sync.connections import save_connection

    m = MARK[x]
    site, secret = create_site(f"{m}-shop", [f"https://{m}.example"])
    w.site[x], w.name[x], w.public[x], w.secret[x] = site.id, site.name, site.public_key, secret
    products = [ProductRecord(f"{m}-prod-{i}", f"{m}-title-{i}", f"/p/{m}-{i}", "", 10.0 + i, "EUR", f"{m}-category") for i in range(4)]
    upsert_products(site.id, products)
    t = int(time.time() * 1000) - 3_600_000
    events = []
    for n in range(4):
        visitor = f"{m}-visitor-{n}"
        for j, p in enumerate(products[: 2 + n % 2]):
            events.append({"id": f"{m}-e{n}-{j}", "type": "product_viewed", "visitor": visitor, "product_id": p.id, "ts": t + j})
        events.append({"id": f"{m}-o{n}", "type": "order_completed", "visitor": visitor, "order_id": f"{m}-order-{n}", "ts": t + 10,
                       "items": [{"product_id": products[n].id, "quantity": 1, "price": 12.5}]})
        events.append({"id": f"{m}-i{n}", "type": "identify", "visitor": visitor, "email": f"{m}-person-{n}@{x}.example",
                       "customer_id": f"{m}-cust-{n}", "ts": t + 20})
    ingest_events(site, events)
    ids = lookup(site.id, VISITOR, [f"{m}-visitor-{n}" for n in range(4)])
    w.profile[x], w.merged[x], w.erasable[x] = ids[f"{m}-visitor-0"], ids[f"{m}-visitor-1"], ids[f"{m}-visitor-2"]
    for n in range(4):
        set_attributes(site.id, ids[f"{m}-visitor-{n}"], {"tier": f"{m}-gold", "note": f"{m}-note-{n}"}, "crm")
    w.product[x], w.visitor[x], w.email[x] = products[0].id, f"{m}-visitor-0", f"{m}-person-0@{x}.example"
    w.segment[x] = f"{m}_seg"
    create_segment(site.id, {"key": w.segment[x], "name": f"{m}-segment-name", "rule": {"field": "attributes.tier", "op": "eq", "value": f"{m}-gold"}})
    rebuild_segment(site.id, w.segment[x])
    w.spare_segment[x] = f"{m}_spare"
    create_segment(site.id, {"key": w.spare_segment[x], "name": f"{m}-spare-name", "rule": {"field": "orders.count", "op": "gte", "value": 1}})
    rebuild_segment(site.id, w.spare_segment[x])
    w.connection[x] = f"{m}conn"
    w.hook_secret[x] = f"{m}-hook-secret-value"
    save_connection(site.id, "shopify", {"shop": f"{m}-store", "access_token": f"shpat_{m}_token_value", "webhook_secret": w.hook_secret[x],
                                         "api_url": "http://127.0.0.1:9/"}, name=w.connection[x], enabled=True)
    from personalize.journeys.store import create_journey, set_status

    w.journey[x], w.spare_journey[x] = f"{m}-journey", f"{m}-spare-journey"
    set_status(create_journey(site.id, w.journey[x], f"{m}-journey-name", {"trigger": {"type": "api"}, "reentry": {"mode": "every_time"}, "steps": [
        {"id": "s1", "type": "wait", "seconds": 3600}, {"id": "s2", "type": "email", "subject": "Hi", "html": "<p>Hi</p>", "recommendations": 2}]}), "active")
    create_journey(site.id, w.spare_journey[x], f"{m}-spare-journey-name", {"trigger": {"type": "api"}, "steps": []})
    from personalize.experiments.store import create_experiment, start_experiment

    arms = [{"name": f"{m}-arm-today", "override": {}}, {"name": f"{m}-arm-popular", "override": {"strategy": "popular"}}]
    w.experiment[x] = start_experiment(site, create_experiment(site, {"name": f"{m}-experiment-name", "slot": "home", "arms": arms})).id
    w.spare_experiment[x] = create_experiment(site, {"name": f"{m}-spare-experiment-name", "slot": "home", "arms": arms}).id
    signing = signing_secret(site.id)
    db.session.commit()
    from personalize.recommend.service import train_site

    train_site(site.id)  # recommendations come from the site's own model, not only from best sellers
    w.markers[x] = {
        site.name, site.public_key, signing, w.segment[x], f"{m}-segment-name", w.spare_segment[x], f"{m}-spare-name", w.connection[x], f"{m}-store", f"{m}-category",
        f"https://{m}.example", w.journey[x], f"{m}-journey-name", w.spare_journey[x], f"{m}-spare-journey-name", f"{m}-experiment-name", f"{m}-spare-experiment-name", f"{m}-arm-popular", *(p.id for p in products), *(p.title for p in products),
        *(f"{m}-visitor-{n}" for n in range(4)), *(f"{m}-person-{n}@{x}.example" for n in range(4)),
        *(f"{m}-cust-{n}" for n in range(4)), *(f"{m}-order-{n}" for n in range(4)), *(f"{m}-note-{n}" for n in range(4)),
    }
    w.secrets |= {secret, f"shpat_{m}_token_value", w.hook_secret[x], "mail-password-value"}


def _missing_site(w: World) -> None:
    """Ids of the same shapes as A's and B's that name nothing: what another site's ids must look like."""
    n = 10**6
    w.site["z"], w.name["z"], w.public["z"], w.secret["z"] = n, "zmark-shop", "pk_zmarkmissing", "sk_zmarkmissing"
    w.product["z"], w.visitor["z"], w.email["z"] = "zmark-prod-0", "zmark-visitor-0", "zmark-person-0@z.example"
    w.profile["z"], w.merged["z"], w.erasable["z"] = n + 1, n + 2, n + 3
    w.segment["z"], w.spare_segment["z"], w.connection["z"], w.hook_secret["z"] = "zmark_seg", "zmark_spare", "zmarkconn", "zmark-hook"
    w.journey["z"], w.spare_journey["z"] = "zmark-journey", "zmark-spare-journey"
    w.experiment["z"], w.spare_experiment["z"] = n + 4, n + 5


def identifiers(w: World, x: str) -> list[str]:
    return [str(v) for v in (w.site[x], w.profile[x], w.merged[x], w.erasable[x], w.product[x], w.visitor[x], w.email[x],
                             w.segment[x], w.spare_segment[x], w.connection[x], w.journey[x], w.spare_journey[x],
                             w.experiment[x], w.spare_experiment[x])]


def normalised(body: str, ids: list[str]) -> str:
    for value in sorted(ids, key=len, reverse=True):
        body = re.sub(rf"(?<![\w-]){re.escape(value)}(?![\w-])", "<id>", body)
    return body


def sent_values(req: Req) -> list[str]:
    """The form and query values of a request: what a re-shown form may repeat."""
    values = [*(req.query or {}).values(), *(req.form or {}).values()]
    return [html.escape(v) for v in values if isinstance(v, str) and len(v) > 2]


def same_refusal(body: str, missing: str, w: World, foreign: set[str], asked: list[str], asked_missing: list[str]) -> bool:
    """Whether a refusal reads like the one for an id that names nothing (it may repeat what was sent)."""
    if body == missing:
        return True
    words = lambda x: [i for i in identifiers(w, x) if not i.isdigit()]  # noqa: E731
    if normalised(body, asked + [i for x in foreign for i in words(x)]) == normalised(missing, asked_missing + words("z")):
        return True
    try:
        one, two = json.loads(body)["error"], json.loads(missing)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    asked = [i for x in foreign for i in identifiers(w, x)]
    return {**one, "message": normalised(one["message"], asked)} == {**two, "message": normalised(two["message"], identifiers(w, "z"))}


@pytest.fixture
def world(ctx) -> World:
    from personalize.admin.access import grant
    from personalize.admin.users import create_admin_user
    from personalize.sites import get_site, rotate_secret_keys

    ctx.config["SEGMENT_REBUILD_INLINE"] = True  # segment work finishes inside the request, so writes can be compared
    w = World()
    for x in "ab":
        _seed_site(w, x)
    w.revoked = w.secret["a"]
    w.secret["a"] = rotate_secret_keys(get_site(w.site["a"]))
    w.secrets |= {w.secret["a"], w.revoked}
    for name, role, sites in (("viewer_a", "viewer", "a"), ("editor_a", "editor", "a"), ("owner", "owner", ""),
                              ("editor_b", "editor", "b"), ("victim", "viewer", "b")):
        user = create_admin_user(f"{name}@team.example", PASSWORD, role)
        for x in sites:
            grant(user.id, w.site[x])
        w.users[name] = user.id
    db.session.commit()
    w.victim = w.users["victim"]
    from personalize.admin.first_run import setup_token

    w.setup_token = setup_token(ctx.config["SECRET_KEY"])
    _missing_site(w)
    return w


# ------------------------------------------------------------------ who calls


@dataclass(frozen=True)
class Principal:
    name: str
    kind: str  # "none", "public", "secret", "revoked", "session"
    home: str = ""  # the site a key belongs to
    role: str = ""
    sees: frozenset = frozenset()  # the sites whose data this caller may see


PRINCIPALS = [
    Principal("signed_out", "none"),
    Principal("public_key_a", "public", "a", sees=frozenset("a")),
    Principal("secret_key_a", "secret", "a", sees=frozenset("a")),
    Principal("secret_key_b", "secret", "b", sees=frozenset("b")),
    Principal("revoked_key_a", "revoked"),
    Principal("viewer_a", "session", role="viewer", sees=frozenset("a")),
    Principal("editor_a", "session", role="editor", sees=frozenset("a")),
    Principal("owner", "session", role="owner", sees=frozenset("ab")),
    Principal("editor_b", "session", role="editor", sees=frozenset("b")),
]


def set_csrf(client) -> str:
    """The token the admin's pages put in their forms (kept in the session)."""
    with client.session_transaction() as s:
        token = s.get("csrf") or "t-" + hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:24]
        s["csrf"] = token
    return token


def sign_in(client, email: str, password: str = PASSWORD) -> None:
    token = set_csrf(client)
    r = client.post("/admin/login", data={"email": email, "password": password, "csrf_token": token})
    assert r.status_code == 302, r.get_data(as_text=True)


def caller(app, w: World, p: Principal):
    """A test client and the headers it sends with every request."""
    client = app.test_client()
    key = {"public": w.public.get(p.home), "secret": w.secret.get(p.home), "revoked": w.revoked}.get(p.kind)
    headers = {"Authorization": f"Bearer {key}"} if key else {}  # a secret key goes only there
    if p.kind == "public":
        headers["X-Personalize-Key"] = key
    if p.kind == "session":
        sign_in(client, f"{p.name}@team.example")
    return client, headers


# ------------------------------------------------------------------ what each route is


@dataclass
class Req:
    path: str
    json: dict | None = None
    form: dict | None = None
    query: dict | None = None


@dataclass
class Spec:
    """How to call one (endpoint, method) and who may.

    ``policy``:
      * ``open``: anyone; ``expect`` are the statuses everyone gets;
      * ``public``: a live public or secret key of a site (the widget's endpoints);
      * ``secret``: a live secret key;
      * ``webhook``: the public key and connection in the address plus the sender's signature
        (its own test below);
      * ``signed_in``, ``editor``, ``owner_only``: admin pages outside a site;
      * ``site_view``, ``site_edit``, ``site_owner``: admin pages of the site in the URL.

    ``build(w, p, q)`` makes the request: ``p`` is the site whose objects are in the path
    (the site id itself, for admin pages), ``q`` the site whose objects are in the query
    or body (or further down the path); ``objects`` says which of the two the request
    names, so which pairs are sent (``both``: also A's page asked for B's thing).
    ``foreign`` is the status for a key or page asked for another site's object.
    ``order``: 0 reads, 1 writes, 2 destructive, 3 signing out.
    """

    policy: str
    build: Callable[[World, str, str], Req]
    objects: str = ""  # "": none; "path": the site's own (a, a) and (b, b); "body": only in the query or body; "both": all four pairs
    foreign: int = 404
    order: int = 0
    expect: tuple[int, ...] = (200,)
    foreign_ok: bool = False  # another site's ids are not an error here (nothing is found; nothing may leak)
    label: str = ""
    check: Callable | None = None  # check(w, principal, site, obj, response) -> a problem, or None
    own_session: bool = False  # an open route that ends the caller's own session (its row goes)


def _foreign(principal, site, obj) -> bool:
    """Whether ``obj`` is another site's: the key's own site for the API, the page's site for the admin."""
    return obj != (principal.home if principal.kind in ("public", "secret") else site)


def _counts_nothing_of_another_site(w, principal, site, obj, r):
    if r.status_code == 200 and _foreign(principal, site, obj) and r.get_json()["count"] != 0:
        return f"a rule about site {obj.upper()}'s attribute or segment counted {r.get_json()['count']} profiles"
    return None


def _found_in_its_own_site(w, principal, site, obj, r):
    """The profile search finds a person of the page's site only: another site's email or id finds nobody."""
    location = r.headers.get("Location", "")
    if obj != site and r.status_code != 200:
        return f"searching for site {obj.upper()}'s person answered {r.status_code} {location}"
    if obj == site and f"/profiles/{w.profile[obj]}" not in location:
        return f"the site's own person was not found ({r.status_code} {location})"
    return None


def _finds_only_its_own_products(w, principal, site, obj, r):
    """The product picker's search finds the page's site's products only."""
    found = [p["id"] for p in r.get_json()["products"]] if r.status_code == 200 else None
    if obj != site and found:
        return f"the picker of site {site.upper()} found site {obj.upper()}'s product"
    if obj == site and r.status_code == 200 and found != [w.product[obj]]:
        return f"the site's own product was not found ({found})"
    return None


def _no_foreign_changes(w, principal, site, obj, r):
    if r.status_code == 200 and _foreign(principal, site, obj) and r.get_json()["changes"]:
        return "the change feed filtered by another site's segment is not empty"
    return None


def _rule(w: World, q: str) -> dict:
    return {"field": "attributes.tier", "op": "eq", "value": f"{MARK[q]}-gold"}


def _admin(path: str) -> Callable[[World, str, str], Req]:
    return lambda w, p, q: Req(path.format(s=w.site[p]))


def _event(w: World, p: str, q: str) -> Req:
    ev = {"id": w.fresh("ev"), "type": "product_viewed", "visitor": w.visitor[q], "product_id": w.product[q], "ts": int(time.time() * 1000)}
    return Req("/api/v1/events", json={"events": [ev]})


SPECS: dict[tuple[str, str], list[Spec]] = {
    # ---- the API: open
    ("api.health", "GET"): [Spec("open", lambda w, p, q: Req("/api/v1/health"))],
    ("api.ready", "GET"): [Spec("open", lambda w, p, q: Req("/api/v1/ready"))],
    ("api.openapi_json", "GET"): [Spec("open", lambda w, p, q: Req("/api/v1/openapi.json"))],
    ("widget.widget_js", "GET"): [Spec("open", lambda w, p, q: Req("/static/widget.js"))],
    ("widget.capture_js", "GET"): [Spec("open", lambda w, p, q: Req("/static/capture.js"))],
    # ---- the API: the widget's (public key)
    ("api.post_events", "POST"): [Spec("public", _event, objects="body", order=1, expect=(202,))],
    ("api.get_recommendations", "GET"): [Spec("public", lambda w, p, q: Req("/api/v1/recommendations", query={
        "visitor": w.visitor[q], "product": w.product[q], "slot": "product"}), objects="body")],
    ("api.post_rank", "POST"): [Spec("public", lambda w, p, q: Req("/api/v1/rank", json={
        "visitor": w.visitor[q], "products": [w.product[q], w.product[p]]}), objects="body")],
    # ---- the API: servers (secret key)
    ("api.site_info", "GET"): [Spec("secret", lambda w, p, q: Req("/api/v1/site"))],
    ("api.index", "GET"): [Spec("secret", lambda w, p, q: Req("/api/v1/products", query={"limit": "50"}))],
    ("api.show", "GET"): [Spec("secret", lambda w, p, q: Req(f"/api/v1/products/{w.product[p]}"), objects="path")],
    ("api.upsert", "POST"): [Spec("secret", lambda w, p, q: Req("/api/v1/products", json={"products": [
        {"id": w.product[q], "title": "overwritten title"}]}), objects="body", foreign_ok=True, order=1)],
    ("api.find_profile", "GET"): [Spec("secret", lambda w, p, q: Req("/api/v1/profiles", query={"visitor": w.visitor[p]}), objects="path")],
    ("api.show_profile", "GET"): [Spec("secret", lambda w, p, q: Req(f"/api/v1/profiles/{w.profile[p]}"), objects="path")],
    ("api.export", "GET"): [Spec("secret", lambda w, p, q: Req(f"/api/v1/profiles/{w.profile[p]}/export"), objects="path")],
    ("api.profile_segments", "GET"): [Spec("secret", lambda w, p, q: Req(f"/api/v1/profiles/{w.profile[p]}/segments"), objects="path")],
    ("api.update_profile", "PATCH"): [Spec("secret", lambda w, p, q: Req(f"/api/v1/profiles/{w.profile[p]}", json={
        "attributes": {"tier": "changed"}, "source": "crm"}), objects="path", order=1)],
    ("api.merge", "POST"): [Spec("secret", lambda w, p, q: Req(f"/api/v1/profiles/{w.profile[p]}/merge", json={
        "profile_id": w.merged[q]}), objects="both", order=2)],
    ("api.delete_profile", "DELETE"): [Spec("secret", lambda w, p, q: Req(f"/api/v1/profiles/{w.erasable[p]}"), objects="path", order=2)],
    ("api.new_token", "POST"): [Spec("secret", lambda w, p, q: Req("/api/v1/profiles/tokens", json={"email": "someone@x.example"}), order=1)],
    ("api.identity_signing_secret", "GET"): [Spec("secret", lambda w, p, q: Req("/api/v1/profiles/signing-secret"))],
    ("api.identity_signing_secret", "POST"): [Spec("secret", lambda w, p, q: Req("/api/v1/profiles/signing-secret"), order=1)],
    ("api.list_segments", "GET"): [Spec("secret", lambda w, p, q: Req("/api/v1/segments"))],
    ("api.new_segment", "POST"): [Spec("secret", lambda w, p, q: Req("/api/v1/segments", json={
        "key": w.fresh("seg"), "rule": {"and": [_rule(w, q), {"segment": w.segment[q]}]}}), objects="body", foreign=400, order=1)],
    ("api.preview", "POST"): [Spec("secret", lambda w, p, q: Req("/api/v1/segments/preview", json={
        "rule": {"or": [_rule(w, q), {"segment": w.segment[q]}]}}), objects="body", foreign_ok=True, order=1,
        check=_counts_nothing_of_another_site)],
    ("api.changes", "GET"): [Spec("secret", lambda w, p, q: Req("/api/v1/segments/changes", query={"segment": w.segment[q]}),
                                  objects="body", foreign_ok=True, check=_no_foreign_changes)],
    ("api.show_segment", "GET"): [Spec("secret", lambda w, p, q: Req(f"/api/v1/segments/{w.segment[p]}"), objects="path")],
    ("api.members", "GET"): [Spec("secret", lambda w, p, q: Req(f"/api/v1/segments/{w.segment[p]}/members"), objects="path")],
    ("api.change_segment", "PUT"): [Spec("secret", lambda w, p, q: Req(f"/api/v1/segments/{w.segment[p]}", json={
        "description": "changed by put"}), objects="path", order=1)],
    ("api.change_segment", "PATCH"): [Spec("secret", lambda w, p, q: Req(f"/api/v1/segments/{w.segment[p]}", json={
        "description": "changed by patch"}), objects="path", order=1)],
    ("api.rebuild", "POST"): [Spec("secret", lambda w, p, q: Req(f"/api/v1/segments/{w.segment[p]}/rebuild"), objects="path", order=1,
                                   expect=(202,))],
    ("api.remove_segment", "DELETE"): [Spec("secret", lambda w, p, q: Req(f"/api/v1/segments/{w.spare_segment[p]}"), objects="path", order=2)],
    ("api.get_rules", "GET"): [Spec("secret", lambda w, p, q: Req("/api/v1/rules"))],
    ("api.put_rules", "PUT"): [Spec("secret", lambda w, p, q: Req("/api/v1/rules", json={"rules": [
        {"name": "Hide one", "action": "hide", "items": {"field": "id", "op": "is", "value": [w.product[q]]}}]}),
        objects="body", foreign=400, order=1)],
    ("api.get_policy", "GET"): [Spec("secret", lambda w, p, q: Req("/api/v1/contact-policy"))],
    ("api.put_policy", "PUT"): [Spec("secret", lambda w, p, q: Req("/api/v1/contact-policy", json={
        "channels": {"email": {"per_day": 1, "per_week": 3}}}), order=1)],
    ("api.enroll", "POST"): [Spec("secret", lambda w, p, q: Req(f"/api/v1/journeys/{w.journey[p]}/enrollments", json={
        "email": f"{w.fresh('entrant')}@x.example", "data": {"plan": "gold"}}), objects="path", order=1)],
    ("unsubscribe.unsubscribe", "GET"): [Spec("open", lambda w, p, q: Req("/email/unsubscribe/eyJzIjoxLCJwIjoxfQ.forged"), expect=(404,))],
    ("unsubscribe.unsubscribe", "POST"): [Spec("open", lambda w, p, q: Req("/email/unsubscribe/eyJzIjoxLCJwIjoxfQ.forged",
                                                                         form={"List-Unsubscribe": "One-Click"}), expect=(404,))],
    # the email block: a sealed token in the address is the only authority (tests/channels check real ones, of each site)
    ("email_block.block_image", "GET"): [Spec("open", lambda w, p, q: Req(f"/email/recs/{w.site[p]}/pz1{'A' * 40}.png"), expect=(404,))],
    ("email_block.card_image", "GET"): [Spec("open", lambda w, p, q: Req(f"/email/recs/{w.site[p]}/pz1{'A' * 40}/1.png"), expect=(404,))],
    ("email_block.click", "GET"): [Spec("open", lambda w, p, q: Req(f"/email/recs/{w.site[p]}/pz1{'A' * 40}/1"), expect=(404,))],
    ("api.receive_webhook", "POST"): [Spec("webhook", lambda w, p, q: Req(f"/api/v1/webhooks/{w.public[p]}/{w.connection[q]}"))],
    # ---- admin: no site
    ("admin.static", "GET"): [Spec("open", lambda w, p, q: Req("/admin/static/admin.css"))],
    ("admin.login", "GET"): [Spec("open", lambda w, p, q: Req("/admin/login"))],
    ("admin.login", "POST"): [Spec("open", lambda w, p, q: Req("/admin/login", form={"email": "nobody@team.example", "password": "wrong password"}),
                                   expect=(401,))],
    ("admin.setup", "GET"): [Spec("open", lambda w, p, q: Req("/admin/setup", query={"token": w.setup_token}), expect=(302,))],
    ("admin.setup", "POST"): [Spec("open", lambda w, p, q: Req("/admin/setup", form={"email": "intruder@x.example", "password": "intruder password",
                                                                                    "token": w.setup_token}), expect=(302,))],
    ("admin.logout", "POST"): [Spec("open", lambda w, p, q: Req("/admin/logout"), expect=(302,), order=3, own_session=True)],
    ("admin.index", "GET"): [Spec("signed_in", lambda w, p, q: Req("/admin/"))],
    ("admin.plugins", "GET"): [Spec("signed_in", lambda w, p, q: Req("/admin/plugins"))],
    ("admin.account", "GET"): [Spec("signed_in", lambda w, p, q: Req("/admin/account"))],
    ("admin.account", "POST"): [Spec("signed_in", lambda w, p, q: Req("/admin/account", form={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD}), order=1)],
    ("admin.account_sessions", "POST"): [Spec("signed_in", lambda w, p, q: Req("/admin/account/sessions"), order=1)],
    ("admin.server_settings", "GET"): [Spec("owner_only", lambda w, p, q: Req("/admin/settings"))],
    ("admin.team", "GET"): [Spec("owner_only", lambda w, p, q: Req("/admin/team"))],
    ("admin.team_add", "POST"): [Spec("owner_only", lambda w, p, q: Req("/admin/team", form={
        "email": f"{w.fresh('new')}@team.example", "password": "a long password", "role": "owner"}), order=1)],
    ("admin.team_update", "POST"): [Spec("owner_only", lambda w, p, q: Req(f"/admin/team/{w.victim}", form={
        "role": "owner", "sites": [str(w.site["a"]), str(w.site["b"])]}), order=1)],
    ("admin.team_remove", "POST"): [Spec("owner_only", lambda w, p, q: Req(f"/admin/team/{w.victim}/remove"), order=2)],
    ("admin.create", "POST"): [Spec("editor", lambda w, p, q: Req("/admin/sites", form={"name": w.fresh("new shop ")}), order=1)],
    # ---- admin: pages of a site
    ("admin.site", "GET"): [Spec("site_view", _admin("/admin/sites/{s}"), objects="path")],
    ("admin.live", "GET"): [Spec("site_view", _admin("/admin/sites/{s}/live"), objects="path")],
    ("admin.dashboard", "GET"): [Spec("site_view", _admin("/admin/sites/{s}/dashboard"), objects="path")],
    ("admin.connectors", "GET"): [Spec("site_view", _admin("/admin/sites/{s}/connectors"), objects="path")],
    ("admin.segments", "GET"): [Spec("site_view", _admin("/admin/sites/{s}/segments"), objects="path")],
    ("admin.profiles", "GET"): [
        Spec("site_view", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/profiles", query={"q": w.email[q]}), objects="both",
             foreign_ok=True, check=_found_in_its_own_site, label="by email"),
        Spec("site_view", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/profiles", query={"q": str(w.profile[q])}), objects="both",
             foreign_ok=True, check=_found_in_its_own_site, label="by id"),
    ],
    ("admin.profile", "GET"): [Spec("site_view", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/profiles/{w.profile[q]}"), objects="both")],
    ("admin.profile_export", "GET"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/profiles/{w.profile[q]}/export"),
                                           objects="both")],
    ("admin.profile_erase", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/profiles/{w.erasable[q]}/erase",
                                                                             form={"confirm": "erase"}), objects="both", order=2)],
    ("admin.recommendations", "GET"): [Spec("site_view", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/recommendations", query={"slot": "home"}),
                                            objects="path")],
    ("admin.recommendations", "POST"): [
        Spec("site_view", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/recommendations", form={
            "action": "preview", "slot": "home", "profile": w.visitor[q], "pin": w.product[p]}), objects="both", foreign_ok=True,
            order=1, label="preview"),
        Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/recommendations", form={
            "action": "save", "slot": "home", "pin": w.product[q]}), objects="both", foreign=400, order=1, label="save"),
    ],
    ("admin.attribute_rules_page", "GET"): [Spec("site_view", _admin("/admin/sites/{s}/recommendations/rules"), objects="path")],
    ("admin.attribute_rules_page", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/recommendations/rules", form={
        "do": "save", "name": "Hide one", "action": "hide", "items_field": "id", "items_op": "is", "items_ids": w.product[q]}),
        objects="both", foreign=400, order=1)],
    ("admin.product_search", "GET"): [Spec("site_view", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/products/search", query={
        "ids": w.product[q]}), objects="both", foreign_ok=True, check=_finds_only_its_own_products)],
    ("admin.segment", "GET"): [Spec("site_view", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/segments/{w.segment[q]}"), objects="both")],
    ("admin.segment_count", "POST"): [Spec("site_view", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/segments/count", form={
        "mode": "json", "rule_json": json.dumps({"or": [_rule(w, q), {"segment": w.segment[q]}]})}), objects="both", foreign_ok=True, order=1,
        check=_counts_nothing_of_another_site)],
    ("admin.segment_edit", "GET"): [
        Spec("site_view", _admin("/admin/sites/{s}/segments/new"), objects="path", label="new"),
        Spec("site_view", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/segments/{w.segment[q]}/edit"), objects="both", label="edit"),
    ],
    ("admin.segment_edit", "POST"): [
        Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/segments/new", form={
            "key": w.fresh("seg"), "name": "made in the admin", "mode": "json", "rule_json": json.dumps({"segment": w.segment[q]})}),
            objects="both", foreign=400, order=1, label="new"),
        Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/segments/{w.segment[q]}/edit", form={
            "name": "renamed in the admin", "mode": "json", "rule_json": json.dumps(_rule(w, q))}), objects="both", order=1,
            label="edit"),
    ],
    ("admin.segment_rebuild", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/segments/{w.segment[q]}/rebuild"),
                                             objects="both", order=1)],
    ("admin.segment_delete", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/segments/{w.spare_segment[q]}/delete"),
                                            objects="both", order=2)],
    ("admin.scores_recompute", "POST"): [Spec("site_edit", _admin("/admin/sites/{s}/scores"), objects="path", order=1)],
    ("admin.contact_policy", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/contact-policy", form={
        "new_channel": "sms", "new_per_day": "1"}), objects="path", order=1)],
    ("admin.holdout", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/holdout", form={"share": "10"}),
                                     objects="path", order=1)],
    ("admin.rename", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/rename", form={"name": w.name[p] + " renamed"}),
                                    objects="path", order=1)],
    ("admin.currency", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/currency", form={"currency": "GBP"}),
                                      objects="path", order=1)],
    ("admin.origins", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/origins", form={
        "allowed_origins": f"https://{MARK[p]}.example https://{MARK[p]}.example:8443"}), objects="path", order=1)],
    ("admin.rotate", "POST"): [Spec("site_owner", _admin("/admin/sites/{s}/rotate"), objects="path", order=2)],
    ("admin.signing", "POST"): [Spec("site_owner", _admin("/admin/sites/{s}/signing-secret"), objects="path", order=1)],
    ("admin.connection", "GET"): [
        Spec("site_view", _admin("/admin/sites/{s}/connectors/new/shopify"), objects="path", label="new"),
        Spec("site_view", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/connectors/{w.connection[q]}/settings"), objects="both",
             label="settings"),
    ],
    ("admin.connection", "POST"): [
        Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/connectors/new/shopify", form={
            "name": w.fresh("conn"), "setting_shop": "new-store", "setting_access_token": "shpat_new_token", "enabled": "1"}),
            objects="path", order=1, label="new"),
        Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/connectors/{w.connection[q]}/settings", form={
            "setting_shop": f"{MARK[q]}-store", "setting_api_url": "http://127.0.0.1:9/", "schedule_minutes": "60"}),
            objects="both", order=1, label="settings"),
    ],
    ("admin.connection_test", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/connectors/{w.connection[q]}/test"),
                                             objects="both", order=1)],
    ("admin.connection_sync", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/connectors/{w.connection[q]}/sync"),
                                             objects="both", order=1)],
    ("admin.journeys", "GET"): [Spec("site_view", _admin("/admin/sites/{s}/journeys"), objects="path")],
    ("admin.journeys_create", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/journeys", form={
        "template": "welcome", "key": w.fresh("welcome-")}), objects="path", order=1)],
    ("admin.journeys_show", "GET"): [Spec("site_view", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/journeys/{w.journey[q]}"), objects="both")],
    ("admin.journeys_settings", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/journeys/{w.journey[q]}/settings", form={
        "trigger_type": "api", "reentry": "every_time", "goal": "order", "goal_days": "9", "control": "5"}), objects="both", order=1)],
    ("admin.journeys_step_add", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/journeys/{w.journey[q]}/steps", form={
        "type": "exit", "position": "after:s1"}), objects="both", order=1)],
    ("admin.journeys_step", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/journeys/{w.journey[q]}/steps/s1", form={
        "wait_mode": "duration", "amount": "3", "unit": "hours"}), objects="both", order=1)],
    ("admin.journeys_step_delete", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/journeys/{w.journey[q]}/steps/s2/delete"),
                                                  objects="both", order=2)],
    ("admin.journeys_status", "POST"): [
        Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/journeys/{w.journey[q]}/status", form={"action": "activate"}),
             objects="both", order=1, label="activate"),
        Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/journeys/{w.spare_journey[q]}/status", form={"action": "delete"}),
             objects="both", order=2, label="delete"),
    ],
    ("admin.journeys_test_email", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/journeys/{w.journey[q]}/steps/s2/test",
                                                                                  form={"to": "me@x.example"}), objects="both", order=1)],
    ("admin.experiments", "GET"): [Spec("site_view", _admin("/admin/sites/{s}/experiments"), objects="path")],
    ("admin.experiments_create", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/experiments", form={
        "name": w.fresh("test-"), "slot": "product", "arm0_name": "Today", "arm1_name": "Best sellers", "arm1_strategy": "popular"}),
        objects="path", order=1)],
    ("admin.experiments_show", "GET"): [Spec("site_view", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/experiments/{w.experiment[q]}"),
                                             objects="both")],
    ("admin.experiments_status", "POST"): [
        Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/experiments/{w.experiment[q]}/status", form={"action": "stop"}),
             objects="both", order=1, label="stop"),
        Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/experiments/{w.spare_experiment[q]}/status", form={"action": "delete"}),
             objects="both", order=2, label="delete"),
    ],
    ("admin.journeys_email_settings", "GET"): [Spec("site_view", _admin("/admin/sites/{s}/email-settings"), objects="path")],
    ("admin.journeys_email_settings", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/email-settings", form={
        "smtp_host": "smtp.example.com", "smtp_port": "587", "from_email": "shop@x.example", "timezone": "UTC", "smtp_password": "mail-password-value"}),
        objects="path", order=1)],
    ("admin.journeys_webhook_secret", "POST"): [Spec("site_owner", _admin("/admin/sites/{s}/email-settings/webhook-secret"), objects="path", order=1)],
    ("admin.connection_delete", "POST"): [Spec("site_edit", lambda w, p, q: Req(f"/admin/sites/{w.site[p]}/connectors/{w.connection[q]}/delete"),
                                               objects="both", order=2)],
}

IGNORED_METHODS = {"HEAD", "OPTIONS"}  # HEAD is GET's; OPTIONS is the CORS preflight (tests/api)


def route_methods(app) -> set[tuple[str, str]]:
    return {(rule.endpoint, m) for rule in app.url_map.iter_rules() for m in rule.methods - IGNORED_METHODS}


def test_every_route_is_in_the_matrix(app):
    routes = route_methods(app)
    where = {(rule.endpoint, m): rule.rule for rule in app.url_map.iter_rules() for m in rule.methods}
    missing = sorted(routes - set(SPECS))
    assert not missing, (
        "routes with no entry in SPECS of tests/security/test_isolation.py — say who may call each and how: "
        + ", ".join(f"{m} {where[(e, m)]} ({e})" for e, m in missing)
    )


# ------------------------------------------------------------------ what each caller must get


def _visible(p: Principal, x: str) -> bool:
    return x in p.sees


def expected(spec: Spec, method: str, p: Principal, site: str, obj: str) -> tuple[str, set]:
    """("allow", statuses) or ("deny", statuses)."""
    pol = spec.policy
    if pol == "open":
        return "allow", set(spec.expect)
    if pol in ("public", "secret"):
        if p.kind in ("none", "session", "revoked"):
            return "deny", {401}
        if pol == "secret" and p.kind == "public":
            return "deny", {403}
        if pol == "secret" and spec.objects in ("path", "both") and site != p.home:
            return "deny", {404}
        if pol == "secret" and spec.objects in ("body", "both") and obj != p.home and not spec.foreign_ok:
            return "deny", {spec.foreign}
        return "allow", set(spec.expect) if spec.expect != (200,) else {200, 201}
    # admin
    if p.kind != "session":
        return "deny", {"login"} if method == "GET" else {401}
    if pol == "signed_in":
        return "allow", {200, 302}
    if pol == "owner_only":
        return ("allow", {200, 302}) if p.role == "owner" else ("deny", {403})
    if pol == "editor":
        return ("allow", {200, 302}) if p.role in ("owner", "editor") else ("deny", {403})
    if not _visible(p, site):
        return "deny", {404}
    reasons = set()
    if pol == "site_edit" and p.role == "viewer" or pol == "site_owner" and p.role != "owner":
        reasons.add(403)
    if spec.objects == "both" and obj != site and not spec.foreign_ok:
        reasons.add(spec.foreign)
    if reasons:
        return "deny", reasons
    return "allow", {200, 302}


def targets(spec: Spec) -> list[tuple[str, str]]:
    if not spec.objects:
        return [("a", "a")]
    return [("a", "a"), ("b", "b"), ("a", "b"), ("b", "a")] if spec.objects == "both" else [("a", "a"), ("b", "b")]


def cases() -> list[tuple[str, str, Spec, str, str]]:
    out = []
    for (endpoint, method), specs in SPECS.items():
        for spec in specs:
            if spec.policy == "webhook":
                continue
            for site, obj in targets(spec):
                out.append((endpoint, method, spec, site, obj))
    out.sort(key=lambda c: c[2].order)
    return out


# ------------------------------------------------------------------ the database, before and after


def _tables():
    # refused_requests is the record of refused widget requests (personalize.refusals): a refusal is
    # written there for the key's site by design, a second later by a background thread; the API tests
    # check that it holds only the key's own site (tests/api/test_refusals.py). journey_cursors is the
    # journeys' catch-up bookmark (no site, no person): the background clock moves it on its own schedule
    # whenever events were stored, whatever request is being checked; journey_inbox_marks likewise holds
    # only each process's "events handled up to" time (no site, no person), written by its inbox thread
    return [t for t in db.metadata.sorted_tables if t.name not in ("refused_requests", "journey_cursors", "journey_inbox_marks")]


def _columns(table):
    """What a snapshot compares: every column, but when a session was last used (every signed-in request,
    refused or not, is use; it only ever moves forward)."""
    return [c for c in table.c if not (table.name == "admin_sessions" and c.name == "last_seen_at")]


def snapshot_all() -> dict[str, list[str]]:
    with db.engine.connect() as conn:
        return {t.name: sorted(repr(tuple(r)) for r in conn.execute(select(*_columns(t)))) for t in _tables()}


def _site_filter(table, site_id: int):
    """A WHERE clause selecting the rows of ``table`` that belong to one site (None: not a site's table)."""
    if table.name == "sites":
        return table.c.id == site_id
    if "site_id" in table.c:
        return table.c.site_id == site_id
    for fk in table.foreign_keys:
        parent = fk.column.table
        if "site_id" in parent.c:
            return fk.parent.in_(select(fk.column).where(parent.c.site_id == site_id))
    return None


def snapshot_site(site_id: int) -> dict[str, list[str]]:
    out = {}
    with db.engine.connect() as conn:
        for t in _tables():
            where = _site_filter(t, site_id)
            if where is not None:
                out[t.name] = sorted(repr(tuple(r)) for r in conn.execute(select(t).where(where)))
    return out


def diff(before: dict, after: dict) -> list[str]:
    return [name for name in before if before[name] != after.get(name)]


# ------------------------------------------------------------------ one request, checked


ERROR_KEYS = {"code", "message", "field"}


def is_api(path: str) -> bool:
    return path.startswith("/api/")


def check_api_error(r, what: str) -> None:
    body = r.get_json(silent=True)
    assert isinstance(body, dict) and set(body) == {"error"}, f"{what}: not the JSON error shape: {r.get_data(as_text=True)[:300]}"
    err = body["error"]
    assert isinstance(err, dict) and {"code", "message"} <= set(err) <= ERROR_KEYS, f"{what}: error shape {err}"
    assert isinstance(err["code"], str) and isinstance(err["message"], str) and err["message"], what


def leaks(body: str, markers: set[str], sent: str) -> list[str]:
    low = body.lower()
    return sorted(m for m in markers if m.lower() in low and m.lower() not in sent)


@dataclass
class Seen:
    """What the database held after the last request, so each check takes one snapshot, not two."""

    everything: dict | None = None
    hidden: dict = field(default_factory=dict)  # the rows of sites the caller may not see: they never change
    oracles: int = 0  # refusals compared with the answer for an id that names nothing


SECRET_SHAPE = re.compile(r"\b(?:sk|ss)_[A-Za-z0-9_\-]{10,}")


def secrets_in_cookies(app, r, w: World) -> list[str]:
    """Secrets in the session cookie an answer sets: signed, not encrypted, so anyone holding it reads it."""
    serializer = app.session_interface.get_signing_serializer(app)
    found = []
    for header in r.headers.getlist("Set-Cookie"):
        name, _, value = header.split(";", 1)[0].partition("=")
        if name != app.config["SESSION_COOKIE_NAME"] or not value:
            continue
        content = json.dumps(serializer.loads(value))
        found += [s[:12] + "…" for s in w.secrets if s in content] + [m[:12] + "…" for m in SECRET_SHAPE.findall(content)]
    return found


def run_case(app, w: World, p: Principal, client, headers, endpoint, method, spec: Spec, site, obj, sent: list[str], seen: Seen) -> list[str]:
    """Send one request; return the problems found (empty: as it should be)."""
    req = spec.build(w, site, obj)
    what = f"{p.name} {method} {req.path} ({endpoint}{'/' + spec.label if spec.label else ''}, site {site}, objects of {obj})"
    form = dict(req.form or {})
    if method != "GET" and not is_api(req.path):
        form["csrf_token"] = set_csrf(client)
    sent.append(json.dumps([req.path, req.query, req.json, req.form], default=str).lower())
    outcome, statuses = expected(spec, method, p, site, obj)
    if p.kind == "session":
        with client.session_transaction() as s:
            s.pop("_flashes", None)  # an earlier request's notice is not this answer's
    db.session.remove()
    before_all = None
    if method != "GET":
        before_all = seen.everything if seen.everything is not None else snapshot_all()
    seen.everything = None
    try:
        r = client.open(req.path, method=method, query_string=req.query, json=req.json, data=form or None, headers=headers)
    except Exception as exc:  # TESTING propagates what would be a 500
        db.session.remove()
        return [f"{what}: server error {type(exc).__name__}: {exc}"]
    body = r.get_data().decode("utf-8", "replace")  # pictures (the email block) are searched for markers too
    problems = []
    status = r.status_code
    if "login" in statuses:
        if not (status == 302 and "/admin/login" in r.headers.get("Location", "")):
            problems.append(f"{what}: expected the sign-in redirect, got {status}")
    elif status not in statuses:
        problems.append(f"{what}: expected {outcome} {sorted(statuses)}, got {status}: {body[:200]}")
    if outcome == "allow" and status == 302 and "/admin/login" in r.headers.get("Location", "") and spec.policy != "open":
        problems.append(f"{what}: allowed, but sent to sign in")
    if status >= 500:
        problems.append(f"{what}: server error {status}")
    if outcome == "deny" and is_api(req.path) and status in (400, 401, 403, 404):
        try:
            check_api_error(r, what)
        except AssertionError as exc:
            problems.append(str(exc))
    # leaks: markers of sites this caller may not see; for a page of one site, markers of the other
    sent_text = " ".join(sent)
    forbidden = set().union(*(w.markers[x] for x in "ab" if not _visible(p, x)))
    if spec.objects and not is_api(req.path):
        forbidden |= w.markers[OTHER[site]]
    found = leaks(body, forbidden, sent_text)
    if found:
        problems.append(f"{what}: the answer holds another site's data: {found[:5]}")
    if spec.check is not None and outcome == "allow":
        note = spec.check(w, p, site, obj, r)
        if note:
            problems.append(f"{what}: {note}")
    secret_found = [s[:12] + "…" for s in w.secrets if s in body]
    if secret_found:
        problems.append(f"{what}: the answer holds a secret: {secret_found}")
    cookie_secrets = secrets_in_cookies(app, r, w)
    if cookie_secrets:
        problems.append(f"{what}: the session cookie holds a secret: {cookie_secrets}")
    # no oracle: another site's id is answered exactly like an id that names nothing
    if outcome == "deny" and status in (400, 404) and p.kind in ("secret", "session"):
        own = p.home or site
        fp = "z" if (p.kind == "secret" and site != own) or (p.kind == "session" and not _visible(p, site)) else site
        fq = "z" if obj != (p.home if p.kind == "secret" else site) else obj
        if fp == "z":
            fq = "z" if obj == site else fq
        if (fp, fq) != (site, obj):
            z = spec.build(w, fp, fq)
            zr = client.open(z.path, method=method, query_string=z.query, json=z.json, data={**(z.form or {}), **(
                {"csrf_token": form["csrf_token"]} if "csrf_token" in form else {})} or None, headers=headers)
            if zr.status_code != status or not same_refusal(body, zr.get_data(as_text=True), w, {x for x in (site, obj) if x not in (fp, fq)},
                                                            sent_values(req), sent_values(z)):
                problems.append(f"{what}: answered unlike a missing id ({zr.status_code}): {body[:150]!r} vs {zr.get_data(as_text=True)[:150]!r}")
            seen.oracles += 1
    if method != "GET":
        db.session.remove()
        from personalize import jobs

        jobs.runner(app).wait(20)
        if outcome == "deny" or spec.policy == "open":
            seen.everything = snapshot_all()
            changed = diff(before_all, seen.everything)
            if spec.own_session and p.kind == "session" and changed == ["admin_sessions"]:
                ended = len(before_all["admin_sessions"]) - len(seen.everything["admin_sessions"])
                changed = [] if ended == 1 and set(seen.everything["admin_sessions"]) < set(before_all["admin_sessions"]) else changed
            if changed:
                problems.append(f"{what}: refused, yet changed {changed}")
        else:  # an allowed write: the sites this caller may not see must be as they were
            problems += hidden_changes(w, seen, what)
    return problems


def hidden_changes(w: World, seen: Seen, what: str) -> list[str]:
    out = []
    for x, before in seen.hidden.items():
        changed = diff(before, snapshot_site(w.site[x]))
        if changed:
            out.append(f"{what}: changed site {x.upper()}'s rows, which this caller may not see: {changed}")
    return out


@pytest.mark.parametrize("principal", PRINCIPALS, ids=[p.name for p in PRINCIPALS])
def test_matrix(app, world, principal):
    client, headers = caller(app, world, principal)
    sent: list[str] = []
    problems = []
    db.session.remove()
    seen = Seen(hidden={x: snapshot_site(world.site[x]) for x in "ab" if not _visible(principal, x)})
    # refused requests first within each phase: one database snapshot then serves as "after" of one and "before" of the next
    ordered = sorted(cases(), key=lambda c: (c[2].order, expected(c[2], c[1], principal, c[3], c[4])[0] == "allow"))
    for endpoint, method, spec, site, obj in ordered:
        problems += run_case(app, world, principal, client, headers, endpoint, method, spec, site, obj, sent, seen)
    db.session.remove()
    problems += hidden_changes(world, seen, f"{principal.name}, over the whole run (reads included)")
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


# ------------------------------------------------------------------ webhooks


def _shopify_signature(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_webhooks_reach_only_the_connection_of_the_key_in_their_address(app, client, world):
    w = world
    body = json.dumps({"id": 1, "email": "hook@x.example", "first_name": "Hook"}).encode()
    headers = {"X-Shopify-Topic": "customers/update", "Content-Type": "application/json"}

    def post(key, conn, secret, delivery):
        return client.post(f"/api/v1/webhooks/{key}/{conn}", data=body, headers={
            **headers, "X-Shopify-Webhook-Id": delivery, "X-Shopify-Hmac-Sha256": _shopify_signature(body, secret)})

    count = lambda: db.session.scalar(text("SELECT count(*) FROM webhook_deliveries"))  # noqa: E731
    refused = [
        ("A's key, B's connection, B's signature", post(w.public["a"], w.connection["b"], w.hook_secret["b"], "d1"), 404),
        ("B's key, A's connection, A's signature", post(w.public["b"], w.connection["a"], w.hook_secret["a"], "d2"), 404),
        ("A's secret key in the address", post(w.secret["a"], w.connection["a"], w.hook_secret["a"], "d3"), 404),
        ("A's rotated key in the address", post(w.revoked, w.connection["a"], w.hook_secret["a"], "d4"), 404),
        ("A's connection signed with B's secret", post(w.public["a"], w.connection["a"], w.hook_secret["b"], "d5"), 401),
        ("A's connection signed with nothing", client.post(f"/api/v1/webhooks/{w.public['a']}/{w.connection['a']}", data=body,
                                                            headers=headers), 401),
    ]
    for what, r, status in refused:
        assert r.status_code == status, (what, r.status_code, r.get_data(as_text=True))
        check_api_error(r, what)
        sent = " ".join((*w.public.values(), *w.connection.values(), w.secret["a"], w.revoked)).lower()
        assert not leaks(r.get_data(as_text=True), w.markers["a"] | w.markers["b"], sent), what
    assert count() == 0, "a refused delivery was stored"
    ok = post(w.public["a"], w.connection["a"], w.hook_secret["a"], "d6")
    assert ok.status_code == 200 and ok.get_json() == {"accepted": True, "duplicate": False}
    from personalize import jobs

    jobs.runner(app).wait(20)
    assert count() == 1
    rows = db.session.execute(text("SELECT c.site_id FROM webhook_deliveries d JOIN connections c ON c.id = d.connection_id")).all()
    assert rows == [(w.site["a"],)]


# ------------------------------------------------------------------ CSRF on every admin form


def admin_posts() -> list[tuple[str, Spec]]:
    return [(e, s) for (e, m), specs in SPECS.items() if m == "POST" and e.startswith("admin.") for s in specs
            if e not in ("admin.login", "admin.setup")]


def test_every_admin_form_refuses_a_request_without_this_sessions_token(app, world):
    """A page of another origin can make the browser POST with the admin's cookie; it cannot read the token."""
    w = world
    owner = app.test_client()
    sign_in(owner, "owner@team.example")
    other = app.test_client()
    sign_in(other, "editor_a@team.example")
    foreign_token = set_csrf(other)
    checked = 0
    for endpoint, spec in admin_posts():
        req = spec.build(w, "a", "a")
        for label, token in (("no token", None), ("another session's token", foreign_token), ("a wrong token", "x" * 32)):
            db.session.remove()
            before = snapshot_all()
            form = dict(req.form or {})
            if token is not None:
                form["csrf_token"] = token
            r = owner.post(req.path, data=form or None)
            assert r.status_code == 400, (endpoint, label, r.status_code)
            assert "did not come from this site" in r.get_data(as_text=True), (endpoint, label)
            db.session.remove()
            assert diff(before, snapshot_all()) == [], f"{endpoint} changed the database on a forged form ({label})"
            checked += 1
        # the header the admin's own scripts send works like the form field
    r = owner.post(f"/admin/sites/{w.site['a']}/segments/count", data={"mode": "json", "rule_json": json.dumps(_rule(w, "a"))},
                   headers={"X-CSRF-Token": set_csrf(owner)})
    assert r.status_code == 200 and r.get_json()["count"] == 4
    # the token is tied to the session: a new sign-in gets a new one
    again = app.test_client()
    sign_in(again, "owner@team.example")
    assert set_csrf(again) != set_csrf(owner)
    assert checked == 3 * len(admin_posts())


def test_the_admin_session_cookie_is_not_sent_cross_site(app, client, world):
    token = set_csrf(client)
    r = client.post("/admin/login", data={"email": "owner@team.example", "password": PASSWORD, "csrf_token": token})
    cookie = r.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie, cookie


# ------------------------------------------------------------------ keys: hashed, compared by hash, revoked at once


def test_secret_keys_and_connector_secrets_are_not_stored_in_plain_text(app, world):
    from personalize.models import ApiKey

    w = world
    plain = {w.secret["a"], w.secret["b"], w.revoked, "shpat_amark_token_value", "shpat_bmark_token_value", w.hook_secret["a"], w.hook_secret["b"]}
    # every text-like column of every table
    found = []
    with db.engine.connect() as conn:
        for t in _tables():
            for row in conn.execute(select(t)):
                flat = repr(tuple(row))
                found += [f"{t.name}: {s[:10]}…" for s in plain if s in flat]
    assert not found, f"plain-text secrets in the database: {found}"
    # what is stored is the SHA-256 of the key; the stored hash itself is not a key
    stored = {k.key_hash: k for k in db.session.scalars(select(ApiKey))}
    for key in (w.secret["a"], w.secret["b"], w.revoked):
        assert hashlib.sha256(key.encode()).hexdigest() in stored
    client = app.test_client()
    for hashed in list(stored)[:2]:
        r = client.get("/api/v1/site", headers={"Authorization": f"Bearer {hashed}"})
        assert r.status_code == 401
        r = client.get("/api/v1/site", headers={"Authorization": f"Bearer sk_{hashed}"})
        assert r.status_code == 401
    # the prefix shown in the admin is not enough, nor a key one character off
    key = w.secret["a"]
    for wrong in (key[:10], key[:-1], key[:-1] + ("A" if key[-1] != "A" else "B"), key + "x", key.upper()):
        r = client.get("/api/v1/site", headers={"Authorization": f"Bearer {wrong}"})
        assert r.status_code == 401, wrong
        check_api_error(r, wrong)
    assert client.get("/api/v1/site", headers={"Authorization": f"Bearer {key}"}).get_json()["id"] == w.site["a"]


def test_keys_are_compared_in_constant_time(app, world, monkeypatch):
    """Both key lookups end in ``hmac.compare_digest`` on what was sent (spied on, not replaced)."""
    w = world
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    client = app.test_client()
    assert client.get("/api/v1/site", headers={"Authorization": f"Bearer {w.secret['b']}"}).status_code == 200
    digest = hashlib.sha256(w.secret["b"].encode()).hexdigest()
    assert any(digest in (a, b) for a, b in calls), "the secret key was not compared with compare_digest"
    calls.clear()
    assert client.get("/api/v1/recommendations", query_string={"key": w.public["b"]}).status_code == 200
    assert any(w.public["b"] in (a, b) for a, b in calls), "the public key was not compared with compare_digest"


def _key_cache_bound() -> float:
    """The longest time a process may keep answering to a rotated key: its documented cache setting, else 0."""
    from pathlib import Path

    from personalize.config import SETTINGS

    bound = 0.0
    docs = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()
    for name, (default, help_) in SETTINGS.items():
        if "CACHE" in name and re.search(r"\bkeys?\b", help_, re.I):
            assert name in docs, f"{name} caches keys, so docs/deployment.md must document it"
            assert 0 <= float(default or 0) <= 10, f"{name} keeps a revoked key alive for {default} s by default; keep it short"
            bound = max(bound, float(default or 0))
    return bound


def test_rotation_revokes_the_old_key_at_once_in_every_process(app, world, tmp_path):
    """Two server instances on one database (two web processes): a key rotated in one is refused by both."""
    from personalize.app import create_app
    from personalize.testing import app_config

    w = world
    second = create_app(app_config(tmp_path / "second", app.config["DATABASE_URL"], AUTO_MIGRATE=False))
    one, two = app.test_client(), second.test_client()
    old = w.secret["b"]
    auth = {"Authorization": f"Bearer {old}"}
    for c in (one, two):  # both have used the key (and filled any cache they keep)
        assert c.get("/api/v1/site", headers=auth).status_code == 200
        assert c.get("/api/v1/recommendations", headers=auth).status_code == 200
    owner = app.test_client()
    sign_in(owner, "owner@team.example")
    r = owner.post(f"/admin/sites/{w.site['b']}/rotate", data={"csrf_token": set_csrf(owner)})
    assert r.status_code == 302
    page = owner.get(r.headers["Location"]).get_data(as_text=True)
    new = re.search(r"sk_[A-Za-z0-9_\-]{30,}", page).group(0)
    assert new != old
    bound = _key_cache_bound()
    deadline = time.monotonic() + bound
    while True:
        answers = [c.get("/api/v1/site", headers=auth).status_code for c in (one, two)]
        answers += [c.get("/api/v1/recommendations", headers=auth).status_code for c in (one, two)]
        if set(answers) == {401} or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    assert answers == [401] * 4, f"the rotated key still worked (within a documented bound of {bound} s): {answers}"
    for c in (one, two):
        assert c.get("/api/v1/site", headers={"Authorization": f"Bearer {new}"}).get_json()["id"] == w.site["b"]
    # the site's public key is unchanged, and the refused key is named as revoked, not as a server fault
    r = two.get("/api/v1/site", headers=auth)
    check_api_error(r, "rotated key")
    assert r.get_json()["error"]["code"] == "invalid_key"
    with second.app_context():
        db.engine.dispose()


def matrix_size() -> dict[str, int]:
    """The matrix's size for docs/security.md: ``python -c "from tests.security.test_isolation import matrix_size as m; print(m())"``."""
    per_caller = cases()
    allowed = sum(expected(spec, m, p, site, obj)[0] == "allow" for p in PRINCIPALS for _e, m, spec, site, obj in per_caller)
    return {
        "route_methods": len(SPECS), "variants": sum(len(v) for v in SPECS.values()), "callers": len(PRINCIPALS),
        "requests": len(per_caller) * len(PRINCIPALS), "allowed": allowed, "refused": len(per_caller) * len(PRINCIPALS) - allowed,
        "writes": sum(m != "GET" for _e, m, *_ in per_caller) * len(PRINCIPALS),
        "refused_writes": sum(m != "GET" and expected(spec, m, p, site, obj)[0] == "deny"
                              for p in PRINCIPALS for _e, m, spec, site, obj in per_caller),
        "cells": len(SPECS) * len(PRINCIPALS), "forged_forms": 3 * len(admin_posts()),
    }


def test_proofs_of_identity_count_only_on_the_site_that_made_them(app, client, world):
    """A click-through token or identity signature of site B must not let a visitor of site A take over an A profile."""
    from personalize.profiles.identity import EMAIL, VISITOR, lookup
    from personalize.profiles.trust import sign_identity, signing_secret

    w = world
    email = w.email["a"]
    holder = lookup(w.site["a"], EMAIL, [email])[email]
    tokens = {}
    for x in "ab":
        r = client.post("/api/v1/profiles/tokens", json={"email": email}, headers={"Authorization": f"Bearer {w.secret[x]}"})
        assert r.status_code == 200
        tokens[x] = r.get_json()["token"]
    b_signature = sign_identity(signing_secret(w.site["b"]), email, None)

    def identify(visitor, **proof):
        ev = {"id": w.fresh("id"), "type": "identify", "visitor": visitor, "ts": int(time.time() * 1000), **proof}
        r = client.post("/api/v1/events", json={"events": [ev]}, headers={"X-Personalize-Key": w.public["a"]})
        assert r.status_code == 202, r.get_data(as_text=True)
        db.session.remove()
        return lookup(w.site["a"], VISITOR, [visitor])[visitor]

    assert identify("stranger-token", token=tokens["b"]) != holder, "site B's token merged a visitor into site A's customer"
    assert identify("stranger-signed", email=email, signature=b_signature) != holder, "site B's signature was trusted by site A"
    assert identify("friend-token", token=tokens["a"]) == holder, "site A's own token should link the visitor"


def test_signing_in_never_sends_the_browser_off_the_admin(app, world):
    """``?next=`` after sign-in stays inside /admin: a link to the sign-in page cannot bounce an admin elsewhere."""
    for target, lands in (("/admin/sites/1", "/admin/sites/1"), ("//evil.example/admin", "/admin/"),
                          ("https://evil.example/admin", "/admin/"), ("/admin@evil.example", "/admin@evil.example"),
                          ("javascript:alert(1)", "/admin/"), ("/api/v1/site", "/admin/")):
        client = app.test_client()
        token = set_csrf(client)
        r = client.post("/admin/login", query_string={"next": target},
                        data={"email": "viewer_a@team.example", "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 302
        location = r.headers["Location"]
        assert location == lands, (target, location)
        parts = re.match(r"^(?:https?:)?//([^/]+)", location)
        assert parts is None or parts.group(1) == "localhost", (target, location)


def test_the_server_settings_page_shows_no_key_or_password(app, world):
    """The owner's settings page lists every setting, but never a key, nor a password inside a URL."""
    from personalize.config import SETTINGS

    hidden = {"SECRET_KEY": "session-signing-value-1", "ENCRYPTION_KEY": "encryption-value-2",
              "REDIS_URL": "redis://:redis-password-3@127.0.0.1:6379/0", "BROKER_URL": "amqp://guest:broker-password-4@127.0.0.1:5672//"}
    # every other setting named like a secret (METRICS_TOKEN…), each with a value of its own
    hidden.update({name: f"hidden-value-of-{name.lower()}" for name, (default, _help) in SETTINGS.items()
                   if name.endswith(("KEY", "TOKEN", "PASSWORD", "SECRET")) and not isinstance(default, int | float) and name not in hidden})
    before = {name: app.config.get(name) for name in hidden}
    app.config.update(hidden)
    try:
        owner = app.test_client()
        token = set_csrf(owner)
        owner.post("/admin/login", data={"email": "owner@team.example", "password": PASSWORD, "csrf_token": token})
        page = owner.get("/admin/settings").get_data(as_text=True)
    finally:
        app.config.update(before)
    assert "<code>redis_url</code>" in page and "<code>broker_url</code>" in page and "127.0.0.1:6379" in page
    for value in ("session-signing-value-1", "encryption-value-2", "redis-password-3", "broker-password-4", *(
            v for v in hidden.values() if v.startswith("hidden-value-of-"))):
        assert value not in page, value
    assert "hidden-value-of-metrics_token" in repr(hidden.values())


def test_a_secret_key_is_refused_where_it_would_be_logged_or_published(app, client, world):
    """A secret key in ``?key=``, an event body or the widget's header is refused (and stores nothing); as a bearer it works."""
    from personalize.models import Event

    w = world
    ev = {"id": "exposed-1", "type": "page_viewed", "visitor": "v-exposed", "ts": int(time.time() * 1000)}
    tries = [
        client.get("/api/v1/recommendations", query_string={"key": w.secret["a"]}),
        client.get("/api/v1/recommendations", headers={"X-Personalize-Key": w.secret["a"]}),
        client.post("/api/v1/events", json={"key": w.secret["a"], "events": [ev]}),
        client.post("/api/v1/events", query_string={"key": w.secret["a"]}, json={"events": [ev]}),
        client.post("/api/v1/events", json={"events": [ev]}, headers={"X-Personalize-Key": w.secret["a"]}),
    ]
    for r in tries:
        assert r.status_code == 401, r.get_data(as_text=True)
        check_api_error(r, "secret key in the open")
        assert r.get_json()["error"]["code"] == "secret_key_exposed" and w.secret["a"] not in r.get_data(as_text=True)
    db.session.remove()
    assert db.session.scalar(select(Event.id).where(Event.event_id == "exposed-1")) is None
    bearer = {"Authorization": f"Bearer {w.secret['a']}"}
    assert client.get("/api/v1/recommendations", headers=bearer).status_code == 200
    assert client.post("/api/v1/events", json={"events": [ev]}, headers=bearer).status_code == 202
