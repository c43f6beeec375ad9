"""The OpenAPI description at /api/v1/openapi.json: valid, complete, and true to what the server answers."""

from __future__ import annotations

import json
import re

import pytest
from jsonschema import Draft202012Validator
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_spec_validator import validate
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

PREFIX = "/api/v1"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def described(document: dict) -> dict[str, set[str]]:
    return {path: {m.upper() for m in item if m in METHODS} for path, item in document["paths"].items()}


def routed(app) -> dict[str, set[str]]:
    """Each /api/v1 route as an OpenAPI path, with the methods a client may call on it."""
    out: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX + "/"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([A-Za-z_]+)>", r"{\1}", rule.rule.removeprefix(PREFIX))
        methods = set(rule.methods) - {"HEAD"}  # Flask answers HEAD for every GET by itself
        if rule.provide_automatic_options:
            methods.discard("OPTIONS")  # Flask's own answer, not one of ours
        out.setdefault(path, set()).update(methods)
    return out


@pytest.fixture
def document(client):
    r = client.get(f"{PREFIX}/openapi.json")  # no key needed
    assert r.status_code == 200 and r.mimetype == "application/json"
    return r.json


def test_the_description_is_a_valid_openapi_document(document):
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": PREFIX}]


def test_every_route_is_described_with_its_methods_and_nothing_else(app, document):
    routes, paths = routed(app), described(document)
    undescribed = {p: m - paths.get(p, set()) for p, m in routes.items() if m - paths.get(p, set())}
    assert not undescribed, f"routes missing from api/openapi.py: {undescribed}"
    phantom = {p: m - routes.get(p, set()) for p, m in paths.items() if m - routes.get(p, set())}
    assert not phantom, f"described but not routed: {phantom}"
    assert sum(map(len, paths.values())) >= 30  # the whole API, not a stub


def test_path_parameters_match_the_routes(app, document):
    for path, item in document["paths"].items():
        names = set(re.findall(r"{([A-Za-z_]+)}", path))
        for method in set(item) & METHODS:
            params = item.get("parameters", []) + item[method].get("parameters", [])
            assert {p["name"] for p in params if p["in"] == "path"} == names, f"{method.upper()} {path}"


def test_every_secret_operation_says_how_keys_fail_and_every_error_has_the_one_shape(document):
    error_responses = document["components"]["responses"]
    for name, response in error_responses.items():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, name
    secret = 0
    for path, item in document["paths"].items():
        for method in set(item) & METHODS:
            op = item[method]
            assert not any(code.startswith("5") and code != "503" for code in op["responses"]), f"{method} {path} documents a 5xx"
            if op.get("security") == [{"secretKey": []}]:
                secret += 1
                assert {"401", "403"} <= set(op["responses"]), f"{method.upper()} {path}"
    assert secret >= 20
    assert document["components"]["securitySchemes"]["secretKey"] == {
        "type": "http", "scheme": "bearer", "description": "a secret key: Authorization: Bearer sk_…",
    }


def check(spec: OpenAPI, app, method: str, url: str, described_request: bool, **kw):
    """Send a request to the app and have openapi-core check both it and the answer against the description."""
    request = Request(EnvironBuilder(method=method, path=url, **kw).get_environ())
    response = app.test_client().open(url, method=method, **kw)
    if described_request:  # bad requests are outside the description on purpose
        spec.validate_request(WerkzeugOpenAPIRequest(request))
    spec.validate_response(WerkzeugOpenAPIRequest(request), WerkzeugOpenAPIResponse(response))
    return response


def test_real_answers_conform_to_the_description(app, client, site, document):
    """Hand-written requests, good and bad, checked by a second validator (openapi-core), not the fuzzer's."""
    spec = OpenAPI.from_dict({**document, "servers": [{"url": "http://localhost" + PREFIX}]})
    secret = {"Authorization": f"Bearer {site.secret_key}"}
    batch = {"key": site.public_key, "events": [
        {"id": "e1", "type": "product_viewed", "visitor": "v1", "product_id": "run-shoe"},
        {"id": "e2", "type": "nope", "visitor": "v1"},
    ]}
    cases = [
        ("POST", f"{PREFIX}/events", {"data": json.dumps(batch), "content_type": "application/json"}, 202),
        ("POST", f"{PREFIX}/events", {"data": "{not json", "content_type": "application/json"}, 400),
        ("GET", f"{PREFIX}/recommendations?key={site.public_key}&visitor=v1&limit=3", {}, 200),
        ("GET", f"{PREFIX}/recommendations?key=pk_nobody", {}, 401),
        ("GET", f"{PREFIX}/products?limit=2", {"headers": secret}, 200),
        ("GET", f"{PREFIX}/products/run-shoe", {"headers": secret}, 200),
        ("GET", f"{PREFIX}/products/no-such", {"headers": secret}, 404),
        ("GET", f"{PREFIX}/products", {"headers": {"Authorization": f"Bearer {site.public_key}"}}, 403),
        ("GET", f"{PREFIX}/site", {}, 401),
        ("GET", f"{PREFIX}/profiles?visitor=runner-1", {"headers": secret}, 200),
        ("POST", f"{PREFIX}/segments", {"headers": secret, "json": {"key": "big", "rule": {"field": "orders.count", "op": "gte", "value": 1}}}, 201),
        ("GET", f"{PREFIX}/segments/big/members", {"headers": secret}, 200),
        ("PUT", f"{PREFIX}/contact-policy", {"headers": secret, "json": {"channels": {"email": {"per_day": 1}}}}, 200),
        ("GET", f"{PREFIX}/health", {}, 200),
        ("GET", f"{PREFIX}/ready", {}, 200),
    ]
    for method, url, kw, status in cases:
        # the server stores the good events of a partly bad batch, but the description only promises valid ones
        described_request = status < 400 and url != f"{PREFIX}/events"
        response = check(spec, app, method, url, described_request, **kw)
        assert response.status_code == status, (method, url, response.json)
        if status >= 400:
            assert set(response.json) == {"error"} and {"code", "message"} <= set(response.json["error"])


AGREEMENT_CASES = [
    # (component, instance, valid, the field the server names when it refuses)
    ("ProductInput", {"id": "mug", "title": "Mug", "attributes": {"k" * 100: 1}}, True, None),
    ("ProductInput", {"id": "mug", "title": "Mug", "attributes": {"k" * 101: 1}}, False, "products[0].attributes"),
    ("ProductInput", {"id": "mug", "title": "Mug", "url": "/p/mug", "image": "https://shop.example/mug.png"}, True, None),
    ("ProductInput", {"id": "mug", "title": "Mug", "url": "p/mug"}, False, "products[0].url"),
    ("ProductInput", {"id": "mug", "title": "Mug", "image": "//cdn.example/mug.png"}, False, "products[0].image"),
    ("ProductInput", {"id": "123", "title": "Mug"}, True, None),
    ("ProductInput", {"id": 123, "title": "Mug"}, False, "products[0].id"),
    ("Event", {"id": "e1", "type": "page_viewed", "visitor": "v1", "properties": {"note": "x" * 2000}}, True, None),
    ("Event", {"id": "e2", "type": "page_viewed", "visitor": "v1", "properties": {"note": "x" * 3000}}, False, "events[0].properties.note"),
    ("Event", {"id": "e3", "type": "product_viewed", "visitor": "v1", "product_id": 123}, False, "events[0].product_id"),
    ("Event", {"id": "e4", "type": "identify", "visitor": "v1", "traits": {"plan tier": "gold"}, "email": "a@example.com"}, False,
     "events[0].traits.plan tier"),
    ("Event", {"id": "e5", "type": "identify", "visitor": "v1", "token": "t.t"}, True, None),
    ("Event", {"id": "e6", "type": "identify", "visitor": "v1"}, False, "events[0].email"),
]


@pytest.mark.parametrize(("component", "instance", "valid", "field"), AGREEMENT_CASES)
def test_the_description_and_the_server_agree_on_what_is_valid(client, site, document, component, instance, valid, field):
    """Both come from one declaration; these are the cases where hand-kept copies once disagreed."""
    schema = document["components"]["schemas"][component]
    assert Draft202012Validator(schema).is_valid(instance) == valid
    if component == "ProductInput":
        r = client.post(f"{PREFIX}/products", json={"products": [instance]}, headers={"Authorization": f"Bearer {site.secret_key}"})
    else:
        r = client.post(f"{PREFIX}/events", json={"key": site.public_key, "events": [instance]})
    assert (r.status_code < 300) == valid, r.json
    if not valid:
        assert r.status_code == 400 and r.json["error"]["field"] == field, r.json
