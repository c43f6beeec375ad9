"""Property-based fuzzing of the whole API against its own OpenAPI description (schemathesis).

For every operation, requests are generated from the description — valid ones
(positive) and ones that break it (negative) — and sent to a real app on a real
database holding two sites, a catalogue, events, profiles and a segment. Each is
sent with a key chosen at random: the right one, none, an unknown one, the other
site's, or a public key where a secret one belongs. Every answer must:

* never be a server error (5xx);
* when it is an error, be JSON in the one documented shape ``{"error": {code, message, field?}}``;
* conform to the description: a documented status, content type and schema;
* for a valid request (positive mode), not be a refusal of its input: schemathesis'
  ``positive_data_acceptance`` (2xx, or 401/403 for a key, 404 for an unknown id, 409 for
  a conflict with what is stored). The only 400s it may get are those its operation lists
  in ``x-refusals`` (a rule no schema can say, such as a product id the catalogue must
  know), with that field and code.

The description and the server's checks come from one declaration (``personalize.shapes``),
so this is a check of that declaration: what it calls valid, the server takes. Strings are
generated without NUL characters, which no field takes (the description says so).

The run is derandomized (same cases every time) and bounded by ``EXAMPLES``
examples per operation and mode; the last test prints how many cases were sent.
"""

from __future__ import annotations

import json
import os
import re
import traceback
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from personalize.app import create_app
from personalize.db import db
from personalize.records import ProductRecord
from personalize.testing import app_config, fresh_database

# per operation and mode (34 operations x 2 modes); PERSONALIZE_FUZZ_EXAMPLES=500 for a deeper run by hand
EXAMPLES = int(os.environ.get("PERSONALIZE_FUZZ_EXAMPLES", "25"))
# the widget's two endpoints take input from every page view: fuzzed deeper
DEEPER = {"POST /events": 4, "GET /recommendations": 2}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
KEY_MODES = ("valid",) * 4 + ("none", "unknown", "other_site", "wrong_kind")
RUN = {"cases": Counter(), "statuses": Counter(), "server_errors": 0, "operations": set(), "crashes": [], "refused_valid": [],
       "positive_statuses": Counter(), "documented_refusals": Counter()}


@schemathesis.serializer("text/plain")
def beacon_text(ctx, value) -> bytes:
    """A text/plain body is the JSON object written as text, as navigator.sendBeacon sends it."""
    if isinstance(value, bytes):
        return value
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else json.dumps(value).encode()


PRODUCTS = [
    ProductRecord("mug", "Blue mug", "/p/mug", "/img/mug.png", 12.5, "EUR", "kitchen"),
    ProductRecord("pot", "Tea pot", "https://shop.example/p/pot", "", 45.0, "EUR", "kitchen", "Cast iron."),
    ProductRecord("cup/2", "Cups, a pair", "/p/cup-2", "", 18.0, "EUR", "kitchen", attributes={"colour": "white"}),
    ProductRecord("timer", "Tea timer", "/p/timer", "", 7.0, "EUR", "kitchen", in_stock=False),
]


def seed_events() -> list[dict]:
    """Views, an order and an identify for a few visitors: profiles with histories, emails and orders."""
    events, t = [], 1_700_000_000_000
    for n in range(6):
        v = f"fuzz-{n}"
        events += [
            {"id": f"{v}-a", "type": "product_viewed", "visitor": v, "product_id": "mug", "ts": t},
            {"id": f"{v}-b", "type": "product_viewed", "visitor": v, "product_id": "pot", "ts": t + 1000},
            {"id": f"{v}-o", "type": "order_completed", "visitor": v, "ts": t + 2000,
             "items": [{"product_id": "mug", "quantity": 1, "price": 12.5}, {"product_id": "cup/2", "quantity": 2, "price": 9.0}]},
            {"id": f"{v}-i", "type": "identify", "visitor": v, "email": f"{v}@example.com", "customer_id": f"c{n}", "traits": {"plan": "gold"}},
        ]
    return events


class Target:
    def __init__(self, app, schema, site, other):
        self.app, self.schema, self.site, self.other = app, schema, site, other

    def real_values(self) -> dict[str, list]:
        from sqlalchemy import select

        from personalize.models import Product, Profile

        with self.app.app_context():
            profiles = db.session.scalars(select(Profile.id).where(Profile.site_id == self.site["id"]).order_by(Profile.id).limit(20)).all()
            products = db.session.scalars(select(Product.external_id).where(Product.site_id == self.site["id"])).all()
        return {"profile_id": list(profiles) or [1], "product_id": list(products), "key": ["big", "small"], "journey": ["welcome"]}


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    with fresh_database(folder) as url:
        # rate limits off: the fuzzer sends hundreds of requests a minute from one address and must reach the endpoints
        limits_off = {"RATE_LIMIT_PER_MINUTE": 0, "RATE_LIMIT_PER_IP": 0, "RATE_LIMIT_PER_SITE": 0, "RATE_LIMIT_PER_SECRET_KEY": 0}
        app = create_app(app_config(folder, url, SEGMENT_REBUILD_INLINE=True, **limits_off))
        with app.app_context():
            from personalize.catalog import upsert_products
            from personalize.profiles import ingest_events
            from personalize.sites import create_site

            shop, shop_secret = create_site("Fuzzed shop", ["https://shop.example"])
            upsert_products(shop.id, PRODUCTS)
            ingest_events(shop, seed_events())
            other, other_secret = create_site("Other shop", [])
            site = {"id": shop.id, "public": shop.public_key, "secret": shop_secret}
            other_site = {"id": other.id, "public": other.public_key, "secret": other_secret}
        client = app.test_client()
        auth = {"Authorization": f"Bearer {shop_secret}"}
        for key, rule in (("big", {"field": "orders.count", "op": "gte", "value": 1}), ("small", {"segment": "big"})):
            assert client.post("/api/v1/segments", json={"key": key, "rule": rule}, headers=auth).status_code == 201
        with app.app_context():  # a journey the shop's servers enter people into
            from personalize.journeys.store import create_journey, set_status

            set_status(create_journey(shop.id, "welcome", "Welcome", {"trigger": {"type": "api"}, "reentry": {"mode": "every_time"},
                                                                       "steps": [{"id": "s1", "type": "wait", "seconds": 3600}]}), "active")
        schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
        schema.config.generation.update(allow_x00=False)  # no field takes NUL (the description's info says so)
        yield Target(app, schema, site, other_site)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def with_keys(case, mode: str, t: Target) -> None:
    """Put the chosen kind of key on a generated request, in the place its operation reads it from."""
    security = case.operation.definition.raw.get("security")
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() not in ("authorization", "x-personalize-key")}
    query = {k: v for k, v in (case.query or {}).items() if k != "key"}
    if security == [{"secretKey": []}]:
        key = {"valid": t.site["secret"], "other_site": t.other["secret"], "unknown": "sk_unknown0000", "wrong_kind": t.site["public"]}.get(mode)
        if key:
            headers["Authorization"] = f"Bearer {key}"
    elif security and {"publicKeyQuery": []} in security:
        key = {"valid": t.site["public"], "other_site": t.other["public"], "unknown": "pk_unknown0000", "wrong_kind": t.site["secret"]}.get(mode)
        if key and mode in ("valid", "wrong_kind"):
            query["key"] = key
        elif key:
            headers["X-Personalize-Key"] = key
    elif "key" in case.path_parameters and mode == "valid":  # the webhook address carries the public key
        case.path_parameters["key"] = t.site["public"]
    case.headers, case.query = headers, query


def use_real_ids(case, real: dict[str, list], data) -> None:
    """Half the time, aim path parameters at objects that exist, so the fuzzer reaches past the 404."""
    for name in list(case.path_parameters):
        if real.get(name) and data.draw(st.booleans(), label=f"real {name}"):
            case.path_parameters[name] = data.draw(st.sampled_from(real[name]), label=name)


def check_error_shape(case, response) -> None:
    if response.status_code < 400:
        return
    if case.path in ("/health", "/ready") and response.status_code == 503:
        return  # these describe their own state, in their own shape
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"code", "message", "field"} and {"code", "message"} <= set(error), body
    assert all(isinstance(v, str) and v for v in error.values()), body


def documented_refusal(case, response) -> bool:
    """A 400 that the operation lists in ``x-refusals`` (field, with ``[]`` for any index; code; words of the message)."""
    if response.status_code != 400:
        return False
    error = json.loads(response.content)["error"]
    field = re.sub(r"\[\d+\]", "[]", error.get("field", ""))
    refusals = case.operation.definition.raw.get("x-refusals", [])
    return any(r["field"] == field and r["code"] == error["code"] and r["message"] in error["message"] for r in refusals)


def check_no_success_without_a_key(case, keys: str, response) -> None:
    """No key, an unknown one, or a public key where a secret one belongs: never a success."""
    security = case.operation.definition.raw.get("security")
    refused = {"none", "unknown", "wrong_kind"} if security == [{"secretKey": []}] else {"none", "unknown"} if security else set()
    if keys in refused:
        assert response.status_code >= 400, f"{case.operation.label} answered {response.status_code} with key mode {keys}"
        if response.status_code in (401, 403):
            assert json.loads(response.content)["error"]["field"] in ("Authorization", "key", "Origin")


def fuzz(target: Target, mode: GenerationMode) -> None:
    real = target.real_values()
    failures = []
    for result in target.schema.get_all_operations():
        operation = result.ok()
        label = operation.label

        @settings(max_examples=EXAMPLES * DEEPER.get(label, 1), derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck), print_blob=False)
        @given(case=operation.as_strategy(generation_mode=mode), keys=st.sampled_from(KEY_MODES), data=st.data())
        def run(case, keys, data):
            with_keys(case, keys, target)
            use_real_ids(case, real, data)
            try:
                response = case.call()
            except Exception:  # the test client passes on what would have been a 500
                RUN["server_errors"] += 1
                RUN["crashes"].append(f"{case.operation.label} {case.query} {case.body!r}"[:1500] + "\n" + traceback.format_exc()[-2500:])
                raise
            RUN["cases"][mode.value] += 1
            RUN["statuses"][response.status_code] += 1
            RUN["operations"].add(case.operation.label)
            if response.status_code >= 500:
                RUN["server_errors"] += 1
                RUN["crashes"].append(f"{case.operation.label} {case.query} {case.body!r}"[:1500] + f"\n-> {response.status_code} {response.text[:500]}")
            checks = CHECKS
            if mode == GenerationMode.POSITIVE:
                RUN["positive_statuses"][response.status_code] += 1
                if documented_refusal(case, response):
                    RUN["documented_refusals"][case.operation.label] += 1
            if mode == GenerationMode.POSITIVE and not documented_refusal(case, response):
                checks = [*CHECKS, positive_data_acceptance]
                if response.status_code == 400:
                    RUN["refused_valid"].append(f"{case.operation.label} {case.query} {case.body!r}"[:1000] + f"\n-> {response.text[:300]}")
            case.validate_response(response, checks=checks)
            check_error_shape(case, response)
            check_no_success_without_a_key(case, keys, response)

        try:
            run()
        except Unsatisfiable:
            assert mode == GenerationMode.NEGATIVE  # nothing to break in a request without parameters or body
        except (Exception, BaseExceptionGroup) as exc:  # keep going: one report of every operation that fails
            failures.append(f"{label}: {exc}"[:3000])
    assert not failures, "\n\n".join(failures + RUN["crashes"][:3] + RUN["refused_valid"][:5])


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_generated_requests_get_documented_answers_and_no_server_error(target, mode):
    fuzz(target, mode)


def test_the_run_covered_every_operation(target, capsys):
    if not RUN["cases"]:  # run on its own (-k): fuzz first
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(target, mode)
    described = {op.ok().label for op in target.schema.get_all_operations()}
    assert RUN["operations"] == described
    total = sum(RUN["cases"].values())
    assert total >= len(described) * 2 * 5 and RUN["server_errors"] == 0
    with capsys.disabled():
        print(f"\nfuzz: {total} cases ({dict(RUN['cases'])}) over {len(described)} operations, "
              f"{RUN['server_errors']} server errors; statuses {dict(sorted(RUN['statuses'].items()))}; "
              f"valid requests: statuses {dict(sorted(RUN['positive_statuses'].items()))}, "
              f"400s listed in x-refusals {dict(sorted(RUN['documented_refusals'].items()))}")


# What the fuzzer found, pinned as plain tests (each was a 500 before its fix).


def test_nul_characters_are_refused_by_name_and_the_good_events_beside_them_kept(client, site):
    secret = {"Authorization": f"Bearer {site.secret_key}"}
    r = client.get("/api/v1/profiles", query_string={"customer_id": "c\x00"}, headers=secret)
    assert r.status_code == 400 and r.json["error"]["field"] == "customer_id"
    r = client.get("/api/v1/segments/a%00b", headers=secret)
    assert r.status_code == 400 and r.json["error"]["field"] == "path"
    r = client.post("/api/v1/segments", data='{"key": "k", "name": "a\\u0000b", "rule": {}}', content_type="application/json", headers=secret)
    assert r.status_code == 400 and r.json["error"]["field"] == "name"
    r = client.post("/api/v1/products", json={"products": [{"id": "p\x00", "title": "T"}]}, headers=secret)
    assert r.status_code == 400 and r.json["error"]["field"] == "products[0].id"
    r = client.post("/api/v1/events", json={"key": site.public_key, "events": [
        {"id": "nul-1", "type": "page_viewed", "visitor": "v\x00"},
        {"id": "nul-2", "type": "page_viewed", "visitor": "v-ok"},
    ]})
    assert r.status_code == 202 and r.json["accepted"] == 1
    assert r.json["rejected"][0]["field"] == "events[0].visitor"


def test_a_token_for_a_non_string_email_is_a_400_and_an_out_of_range_profile_id_a_404(client, site):
    secret = {"Authorization": f"Bearer {site.secret_key}"}
    r = client.post("/api/v1/profiles/tokens", json={"email": True, "customer_id": "c1"}, headers=secret)
    assert r.status_code == 400 and r.json["error"]["field"] == "email"
    r = client.get(f"/api/v1/profiles/{2**63}", headers=secret)
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"


def test_an_identify_with_a_non_ascii_signature_or_token_is_only_a_claim(client, site):
    r = client.post("/api/v1/events", json={"key": site.public_key, "events": [
        {"id": "sig-1", "type": "identify", "visitor": "v-sig", "email": "a@example.com", "signature": "\u00c8"},
        {"id": "tok-1", "type": "identify", "visitor": "v-tok", "token": "\u00e9.\u00e9"},
    ]})
    assert r.status_code == 202 and r.json["accepted"] == 2


def test_an_event_type_that_is_a_list_or_an_object_is_refused_by_name(client, site):
    for etype in ([], ["page_viewed"], {"a": 1}, 5):
        r = client.post("/api/v1/events", json={"key": site.public_key, "events": [{"id": "t-1", "type": etype, "visitor": "v"}]})
        assert r.status_code == 400 and r.json["error"]["field"] == "events[0].type", r.json


def test_a_rule_with_a_list_as_op_or_a_window_beyond_the_calendar_is_refused_by_name(client, site):
    """Found once the description showed real rule trees: both were 500s."""
    secret = {"Authorization": f"Bearer {site.secret_key}"}
    r = client.post("/api/v1/segments/preview", json={"rule": {"field": "orders.count", "op": ["gt"], "value": 1}}, headers=secret)
    assert r.status_code == 400 and r.json["error"]["field"] == "rule.op", r.json
    far = {"behaviour": {"event": "product_viewed", "within_days": 876050}}
    r = client.post("/api/v1/segments", json={"key": "far", "rule": far}, headers=secret)
    assert r.status_code == 400 and r.json["error"]["field"] == "rule.behaviour.within_days", r.json
    r = client.post("/api/v1/segments", json={"key": "far", "rule": {"behaviour": {**far["behaviour"], "within_days": 100_000}}}, headers=secret)
    assert r.status_code == 201, r.json
