"""``GET /api/v1/openapi.json``: the API described in OpenAPI 3.1, built here as plain Python data.

The description lives in code rather than in a YAML file so the server needs no
YAML parser at run time and the wheel carries it like any other module. What a
request may hold is not written here: each body and query is declared once, next
to the endpoint that reads it (``personalize.shapes``), and both the endpoint's
checks and the schemas below come from that declaration. A rule a schema cannot
say (one that depends on what is stored, such as a product id the catalogue must
know) is listed in the operation's ``x-refusals``: the field (``[]`` for any
index), the error code, words of the error message, and when. A test
(``tests/security/test_openapi.py``) checks that every ``/api/v1`` route is
described with the same methods, and that every described path exists; another
(``tests/security/test_fuzz.py``) sends generated requests to every operation
and checks the answers against it.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from ..profiles.events import EVENT
from ..reasons import REASONS
from ..segments.rules import rule_schema
from ..segments.store import MAX_SEGMENTS, SEGMENT_CREATE, SEGMENT_INPUT
from . import bp
from .events import event_batch
from .journeys import ENROLLMENT
from .products import PAGE, PRODUCT, UPSERT
from .profiles import FIND, MERGE, PROFILE_PATCH, TOKEN
from .rank import rank_body
from .recommendations import recommendations_query
from .rules import PUT_RULES
from .segments import CHANGES, MAX_CHANNELS, MEMBERS, POLICY, PREVIEW

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _resp(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if kind is None:
        return {"anyOf": [schema, {"type": "null"}]}
    return {**schema, "type": [*(kind if isinstance(kind, list) else [kind]), "null"]}


def _obj(properties: dict[str, Any], required: list[str] | None = None, additional: Any = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if additional is not True:
        schema["additionalProperties"] = additional
    return schema


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _body(schema: dict[str, Any], *, plain_text: bool = False, required: bool = True) -> dict[str, Any]:
    content: dict[str, Any] = {JSON: {"schema": schema}}
    if plain_text:
        # navigator.sendBeacon sends the same JSON object as text/plain (no CORS preflight)
        content["text/plain"] = {"schema": {**schema, "description": "the same JSON object, written as JSON text (navigator.sendBeacon)"}}
    return {"required": required, "content": content}


STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
TIME = {"type": "string", "description": "UTC, ISO 8601 with a trailing Z"}

# what every error answer looks like (api/errors.py)
ERROR = _obj({
    "error": _obj({
        "code": {"type": "string", "description": "a stable, machine-readable code such as invalid, missing_key, not_found"},
        "message": {"type": "string", "description": "what went wrong, for a developer"},
        "field": {"type": "string", "description": "the field, parameter or header at fault, with its path (events[3].type)"},
    }, ["code", "message"], additional=False),
}, ["error"], additional=False)

RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "string"}}}

ERROR_RESPONSES = {
    "BadRequest": "invalid input (`field` says where), or a body that is not JSON",
    "Unauthorized": "no key, or an unknown or revoked key",
    "Forbidden": "a public key on a secret-key endpoint, or a page origin the site does not allow",
    "NotFound": "no such object (or endpoint)",
    "Conflict": "the change conflicts with what is stored",
    "PayloadTooLarge": "too many items in one request, or a body over MAX_CONTENT_LENGTH",
    "UnsupportedMediaType": "a body that is neither application/json nor text/plain",
    "TooManyRequests": "over a rate limit; retry after Retry-After seconds",
    "Unavailable": "the database (or the connection's settings) cannot serve this now; retry after Retry-After seconds",
}
STATUS_OF = {
    "BadRequest": "400", "Unauthorized": "401", "Forbidden": "403", "NotFound": "404", "Conflict": "409",
    "PayloadTooLarge": "413", "UnsupportedMediaType": "415", "TooManyRequests": "429", "Unavailable": "503",
}
# every operation may answer these
COMMON_ERRORS = ("BadRequest", "NotFound", "TooManyRequests", "Unavailable")
WITH_BODY_ERRORS = ("PayloadTooLarge", "UnsupportedMediaType")

PUBLIC = [{"publicKeyQuery": []}, {"publicKeyHeader": []}]
SECRET = [{"secretKey": []}]

LIMITS = _obj({
    "per_day": _nullable({"type": "integer", "minimum": 0, "maximum": 10000}),
    "per_week": _nullable({"type": "integer", "minimum": 0, "maximum": 10000}),
}, additional=False)


def _schemas(max_events: int, max_limit: int) -> dict[str, Any]:
    batch = event_batch(max_events).schema(as_field=False)
    batch["properties"]["events"]["items"] = _ref("Event")
    product = PRODUCT.schema(as_field=False)
    identities = {"type": "object", "additionalProperties": {"type": "array", "items": STR}}
    membership = _obj({"key": STR, "name": STR, "since": TIME}, ["key", "since"])
    return {
        "Error": ERROR,
        "Event": EVENT.schema(as_field=False),
        "EventBatch": batch,
        "EventsAccepted": _obj({
            "accepted": INT, "duplicates": INT,
            "rejected": {"type": "array", "items": _obj({"index": INT, "field": STR, "code": STR, "message": STR}, ["index", "code", "message"])},
        }, ["accepted", "duplicates"]),
        "Recommendations": _obj({
            "rec_id": STR, "slot": STR, "strategy": {"type": "string", "description": (
                "personal, popular or holdout; on page slots similar, together, cart or recent; on POST /rank rank, as-given or holdout")},
            "items": {"type": "array", "maxItems": max_limit, "items": _obj({
                "id": STR, "title": STR, "url": STR, "image": STR, "price": _nullable(NUM), "currency": STR, "reason": _nullable(STR),
                "reason_code": {**_nullable(STR), "description": "why, as a code the widget words in the page's language: "
                                + ", ".join(REASONS) + ", or custom (show `reason` as it is)"},
                "reason_args": {"type": "object", "additionalProperties": STR, "description": "the code's arguments, e.g. {\"title\": \"Tea pot\"}"},
            }, ["id", "title"])},
            "products": {"type": "array", "items": STR, "description": "POST /rank only: every given id, in the new order"},
            "label": {"type": "string", "description": "GET /recommendations: the list's name for screen readers, in the request's `lang`"},
        }, ["rec_id", "slot", "strategy", "items"]),
        "ProductInput": product,
        "Product": _obj({
            "id": STR, "title": STR, "url": STR, "image": STR, "price": _nullable(NUM), "currency": STR, "category": STR,
            "description": STR, "in_stock": {"type": "boolean"}, "attributes": {"type": "object"}, "updated_at": TIME,
        }, ["id", "title", "in_stock", "updated_at"]),
        "Profile": _obj({
            "id": INT, "email": _nullable(STR), "customer_id": _nullable(STR), "created_at": TIME, "last_seen_at": _nullable(TIME),
            "identities": identities,
            "attributes": {"type": "object", "additionalProperties": _obj({"value": {}, "source": STR, "updated_at": _nullable(TIME)})},
            "timeline": _obj({"events": {"type": "object"}, "orders": _obj({"count": INT, "total": NUM})}, ["events", "orders"]),
            "scores": _nullable({**_obj({
                "orders": INT, "total_spent": NUM, "avg_order": NUM, "recency_days": NUM, "tenure_days": NUM,
                "r_score": INT, "f_score": INT, "m_score": INT, "rfm": STR, "rfm_segment": STR, "value": NUM,
                "attrition": NUM, "expected_orders": NUM, "potential": NUM, "cluster": INT, "cluster_name": STR, "computed_at": TIME,
                "order_propensity": _nullable({**NUM, "minimum": 0, "maximum": 1, "description": (
                    "the chance (0-1, calibrated) that the customer orders in the 30 days after computed_at; "
                    "null until the scores are computed again after an upgrade")}),
                "category_propensity": _nullable({
                    "type": "object", "additionalProperties": {**NUM, "minimum": 0, "maximum": 1},
                    "description": ("the customer's likeliest categories (at most three) with the chance (0-1) of buying "
                                    "in each in the next 30 days, e.g. {\"Tea\": 0.31}; null when the shop's products have no categories"),
                }),
            }), "description": "computed scores (docs/segments.md); null before the customer is scored"}),
            "segments": {"type": "array", "items": membership},
            "merged_from": {"type": "integer", "description": "the id asked for, when it was merged into this profile"},
        }, ["id", "email", "customer_id", "identities", "attributes", "timeline", "scores", "segments"]),
        "SegmentInput": SEGMENT_INPUT.schema(as_field=False),
        "Rule": rule_schema(),
        "Segment": _obj({
            "key": STR, "name": STR, "description": STR, "rule": {"type": "object"},
            "status": {"type": "string", "description": "building or ready"}, "member_count": INT,
            "created_at": TIME, "updated_at": TIME, "rebuilt_at": _nullable(TIME),
        }, ["key", "name", "rule", "status", "member_count"]),
        "ContactPolicy": _obj({"channels": {"type": "object", "additionalProperties": LIMITS}}, ["channels"]),
        "Health": _obj({"status": {"type": "string", "enum": ["ok", "degraded"]}, "database": STR}, ["status", "database"]),
        "Part": _obj({"state": {"type": "string", "enum": ["ok", "off", "degraded", "error"]}, "detail": STR}, ["state"]),
    }


def _upsert_schema() -> dict[str, Any]:
    schema = UPSERT.schema(as_field=False)
    schema["properties"]["products"]["items"] = _ref("ProductInput")
    return schema


def _path_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


KEY_FIXED = ("key", "invalid", "cannot change", "key differs from the segment's own: a key is fixed once created")
PROFILE_ID = _path_param("profile_id", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}, "a profile id; a merged profile's old id still works")
SEGMENT_KEY = _path_param("key", {"type": "string", "minLength": 1, "maxLength": 64}, "the segment's key")


def _op(summary: str, responses: dict[str, Any], *, security: list | None = None, errors: tuple[str, ...] = (),
        body: dict[str, Any] | None = None, parameters: list | None = None, description: str | None = None,
        tag: str, refusals: list[tuple[str, str, str, str]] = ()) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": dict(responses)}
    if refusals:  # 400s a schema cannot foretell: (field, code, words of the message, when)
        op["x-refusals"] = [{"field": field, "code": code, "message": words, "when": when} for field, code, words, when in refusals]
    if description:
        op["description"] = description
    if security is not None:
        op["security"] = security
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
        errors = (*errors, *WITH_BODY_ERRORS)
    for name in (*COMMON_ERRORS, *errors):
        op["responses"].setdefault(STATUS_OF[name], _resp(name))
    return op


def _secret(summary: str, responses: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return _op(summary, responses, security=SECRET, errors=("Unauthorized", "Forbidden", *kw.pop("errors", ())), **kw)


def _paths() -> dict[str, Any]:
    profile_ref = _ref("Profile")
    segment_ref = _ref("Segment")
    preflight = _op("CORS preflight of a browser", {"204": {"description": "the allowed methods and headers, for the site's origins"}},
                    security=[], tag="public")
    return {
        "/events": {
            "post": _op(
                "Send a batch of widget events", {"202": _ok("stored (only now answered); invalid events listed in rejected", _ref("EventsAccepted"))},
                security=[*PUBLIC, {}], errors=("Unauthorized", "Forbidden"), tag="public",
                description="The public key may also be sent in the body as `key`. An event id stored before counts as a duplicate "
                            "and is not stored again. When no event of the batch is valid the answer is a 400 naming the first problem.",
                body=_body(_ref("EventBatch"), plain_text=True),
            ),
            "options": preflight,
        },
        "/recommendations": {
            "get": _op(
                "A visitor's recommendations for a page slot", {"200": _ok("the list, best first", _ref("Recommendations"))},
                security=[*PUBLIC, *SECRET], errors=("Unauthorized", "Forbidden"), tag="public",
                description="A page asks with the public key and its visitor id. A server asks with its secret key "
                            "(Authorization: Bearer sk_…) and `customer_id` or `email` instead of `visitor`; a public key "
                            "sending either is refused with 403.",
                parameters=recommendations_query(current_app.config["RECOMMENDATION_LIMIT_MAX"]).parameters(),
                refusals=[(name, "invalid", "not several", "more than one of visitor, customer_id and email is given")
                          for name in ("customer_id", "email")],
            ),
            "options": preflight,
        },
        "/rank": {
            "post": _op(
                "A listing's products re-ordered for a visitor", {"200": _ok("every given id in the new order, and the first cards", _ref("Recommendations"))},
                security=[*PUBLIC, {}], errors=("Unauthorized", "Forbidden"), tag="public",
                description="The public key may also be sent in the body as `key`. Ids the shop does not know stay in `products`; "
                            "`items` holds the cards of the first `limit` known, in-stock ones. More than 200 ids is a 413.",
                body=_body(rank_body(current_app.config["RECOMMENDATION_LIMIT_MAX"]).schema(as_field=False), plain_text=True),
            ),
            "options": preflight,
        },
        "/products": {
            "post": _secret("Insert or update up to 1000 products", {"200": _ok("counts", _obj({"inserted": INT, "updated": INT, "unchanged": INT}, ["inserted", "updated", "unchanged"]))},
                            body=_body(_upsert_schema()),
                            tag="catalogue"),
            "get": _secret("A page of the catalogue", {"200": _ok("products by id", _obj({"products": {"type": "array", "items": _ref("Product")}, "total": INT, "limit": INT, "offset": INT}, ["products", "total", "limit", "offset"]))},
                           parameters=PAGE.parameters(),
                           tag="catalogue"),
        },
        "/products/{product_id}": {
            "get": _secret("One product", {"200": _ok("the product", _ref("Product"))},
                           parameters=[_path_param("product_id", {"type": "string", "minLength": 1, "maxLength": 200}, "your product id")], tag="catalogue"),
        },
        "/site": {
            "get": _secret("The key's site", {"200": _ok("the site", _obj({"id": INT, "name": STR, "public_key": STR, "allowed_origins": {"type": "array", "items": STR}}, ["id", "name", "public_key", "allowed_origins"]))}, tag="site"),
        },
        "/health": {
            "get": _op("Liveness: is this process up and its database answering", {
                "200": _ok("alive", _ref("Health")), "503": _ok("the database does not answer", _ref("Health")),
            }, security=[], tag="operations"),
        },
        "/ready": {
            "get": _op("Readiness: the state of every part the server uses", {
                "200": _ok("ok or degraded", _obj({"status": STR, "version": STR, "process": INT, "database": _ref("Part"), "models": _ref("Part"), "redis": _ref("Part"), "broker": _ref("Part")}, ["status", "version", "database", "models", "redis", "broker"])),
                "503": _ok("a part is in error", _obj({"status": STR}, ["status"])),
            }, security=[], tag="operations"),
        },
        "/openapi.json": {
            "get": _op("This description", {"200": _ok("an OpenAPI 3.1 document", {"type": "object", "required": ["openapi", "paths"]})}, security=[], tag="operations"),
        },
        "/webhooks/{key}/{connection}": {
            "post": _op(
                "A delivery from a connected system (e.g. Shopify)", {"200": _ok("stored; a delivery sent twice is stored once", _obj({"accepted": {"type": "boolean"}, "duplicate": {"type": "boolean"}}, ["accepted", "duplicate"]))},
                security=[], errors=("Unauthorized",), tag="webhooks",
                description="The site's public key and the connection's name are in the address; the connector checks the delivery's "
                            "signature (for Shopify, X-Shopify-Hmac-Sha256). A wrong signature is a 401; an unknown key or connection a 404.",
                parameters=[_path_param("key", {"type": "string", "minLength": 1, "maxLength": 200}, "the site's public key"),
                            _path_param("connection", {"type": "string", "minLength": 1, "maxLength": 100}, "the connection's name")],
                body=_body({"type": "object", "description": "the system's own payload, passed to its connector as it came"}),
            ),
        },
        "/profiles": {
            "get": _secret("Find the profile holding an email, customer id or visitor id", {"200": _ok("the profile", profile_ref)},
                           description="Give one of the three parameters (the first given of email, customer_id, visitor counts).",
                           parameters=FIND.parameters(), refusals=[("email", "missing", "give one of", "none of email, customer_id and visitor is given")],
                           tag="profiles"),
        },
        "/profiles/{profile_id}": {
            "parameters": [PROFILE_ID],
            "get": _secret("One profile: identities, attributes, timeline, scores, segments", {"200": _ok("the profile", profile_ref)}, tag="profiles"),
            "patch": _secret("Set attributes (the newest value wins)", {"200": _ok("the names changed, and the profile", _obj({"changed": {"type": "array", "items": STR}, "profile": profile_ref}, ["changed", "profile"]))},
                             body=_body(PROFILE_PATCH.schema(as_field=False)), tag="profiles"),
            "delete": _secret("Erase a profile and every row about it", {"200": _ok("erased", _obj({"erased": INT, "identities": {"type": "object"}}, ["erased", "identities"]))}, tag="profiles"),
        },
        "/profiles/{profile_id}/export": {
            "parameters": [PROFILE_ID],
            "get": _secret("Everything stored about a person", {"200": _ok("the export", _obj({"profile": {"type": "object"}, "identities": {"type": "array"}, "events": {"type": "array"}, "orders": {"type": "array"}}, ["profile", "identities", "events", "orders"]))}, tag="profiles"),
        },
        "/profiles/{profile_id}/merge": {
            "parameters": [PROFILE_ID],
            "post": _secret("Fold another profile into this one", {"200": _ok("the merged profile, and the rows moved per table", _obj({"profile": profile_ref, "moved": {"type": "object", "additionalProperties": INT}}, ["profile", "moved"]))},
                            errors=("Conflict",), body=_body(MERGE.schema(as_field=False)), tag="profiles"),
        },
        "/profiles/{profile_id}/segments": {
            "parameters": [PROFILE_ID],
            "get": _secret("The segments a profile belongs to", {"200": _ok("memberships", _obj({"segments": {"type": "array", "items": _obj({"key": STR, "name": STR, "since": TIME}, ["key", "since"])}}, ["segments"]))}, tag="profiles"),
        },
        "/profiles/tokens": {
            "post": _secret("A signed click-through token naming a person (for email links)", {"200": _ok("the token", _obj({"token": STR}, ["token"]))},
                            body=_body(TOKEN.schema(as_field=False)), tag="profiles"),
        },
        "/profiles/signing-secret": {
            "get": _secret("The secret the shop signs identities with", {"200": _ok("the secret", _obj({"signing_secret": STR}, ["signing_secret"]))}, tag="profiles"),
            "post": _secret("Rotate the signing secret", {"200": _ok("the new secret", _obj({"signing_secret": STR}, ["signing_secret"]))}, tag="profiles"),
        },
        "/segments": {
            "get": _secret("Every segment of the site", {"200": _ok("segments by key", _obj({"segments": {"type": "array", "items": segment_ref}}, ["segments"]))}, tag="segments"),
            "post": _secret("Create a segment (its members are built in the background)", {"201": _ok("the segment", segment_ref)},
                            errors=("Conflict",), body=_body(SEGMENT_CREATE.schema(as_field=False)), tag="segments",
                            refusals=[("key", "invalid", "segments", f"the site has {MAX_SEGMENTS} segments already")]),
        },
        "/segments/preview": {
            "post": _secret("How many profiles a rule matches now", {"200": _ok("the count", _obj({"count": INT}, ["count"]))},
                            body=_body(PREVIEW.schema(as_field=False)), tag="segments"),
        },
        "/segments/changes": {
            "get": _secret("The membership change feed", {"200": _ok("changes, oldest first; pass next as after", _obj({
                "changes": {"type": "array", "items": _obj({"id": INT, "segment": STR, "profile_id": INT, "change": STR, "at": TIME, "identities": {"type": "object"}}, ["id", "segment", "profile_id", "change", "at"])},
                "next": INT}, ["changes", "next"]))},
                parameters=CHANGES.parameters(), tag="segments"),
        },
        "/segments/{key}": {
            "parameters": [SEGMENT_KEY],
            "get": _secret("One segment", {"200": _ok("the segment", segment_ref)}, tag="segments"),
            "put": _secret("Change a segment (a new rule rebuilds its members)", {"200": _ok("the segment", segment_ref)}, body=_body(_ref("SegmentInput")), tag="segments",
                           refusals=[KEY_FIXED]),
            "patch": _secret("Change a segment (a new rule rebuilds its members)", {"200": _ok("the segment", segment_ref)}, body=_body(_ref("SegmentInput")), tag="segments",
                             refusals=[KEY_FIXED]),
            "delete": _secret("Delete a segment no other segment refers to", {"200": _ok("deleted", _obj({"deleted": STR}, ["deleted"]))}, errors=("Conflict",), tag="segments"),
        },
        "/segments/{key}/rebuild": {
            "parameters": [SEGMENT_KEY],
            "post": _secret("Rebuild a segment's members in the background", {"202": _ok("the segment, building", segment_ref)}, tag="segments"),
        },
        "/segments/{key}/members": {
            "parameters": [SEGMENT_KEY],
            "get": _secret("A page of a segment's members by profile id", {"200": _ok("members", _obj({
                "segment": STR, "member_count": INT, "next": _nullable(INT),
                "members": {"type": "array", "items": _obj({"profile_id": INT, "since": TIME, "email": _nullable(STR), "customer_id": _nullable(STR)}, ["profile_id", "since"])},
            }, ["segment", "member_count", "members", "next"]))},
                parameters=MEMBERS.parameters(),
                tag="segments"),
        },
        "/journeys/{journey}/enrollments": {
            "parameters": [_path_param("journey", {"type": "string", "minLength": 1, "maxLength": 64}, "the journey's key")],
            "post": _secret(
                "Enter a person into a journey triggered by this API",
                {"201": _ok("entered: the first step is stored and due", _obj({"entered": {"type": "boolean", "enum": [True]}, "enrollment_id": INT, "profile_id": INT, "control": {"type": "boolean"}}, ["entered", "enrollment_id", "profile_id", "control"])),
                 "200": _ok("not entered, and why (already in it, the re-entry rule, the entry condition)", _obj({"entered": {"type": "boolean", "enum": [False]}, "profile_id": INT, "reason": STR}, ["entered", "profile_id", "reason"]))},
                errors=("Conflict",), tag="journeys",
                description="Name the person with exactly one of profile_id, email, customer_id or visitor; an email or customer id "
                            "not seen yet makes a profile. `data` (a flat object) is what the journey's templates see as `trigger`. "
                            "With an `idempotency_key`, a request sent again enters the person once. 409 when the journey is not "
                            "active or is entered by another trigger.",
                body=_body(ENROLLMENT.schema(as_field=False)),
            ),
        },
        "/rules": {
            "get": _secret("The site's rules by attribute", {"200": _ok("the rules", _obj({"rules": {"type": "array", "items": {"type": "object"}}}))},
                           tag="site"),
            "put": _secret("Replace the site's rules by attribute (the rules by product id stay)",
                           {"200": _ok("the rules as stored", _obj({"rules": {"type": "array", "items": {"type": "object"}}}))},
                           body=_body(PUT_RULES.schema(as_field=False)), tag="site",
                           refusals=[("rules[].id", "invalid", "is used by another rule", "two rules have one id"),
                                     *((f"rules[].{where}.value", "invalid", "unknown product id", "a rule names a product id the catalogue does not know")
                                       for where in ("items", "when.items"))]),
        },
        "/contact-policy": {
            "get": _secret("How often each channel may contact one person", {"200": _ok("the policy", _ref("ContactPolicy"))}, tag="segments"),
            "put": _secret("Set channel limits", {"200": _ok("the policy", _ref("ContactPolicy"))},
                           body=_body(POLICY.schema(as_field=False)), tag="segments",
                           refusals=[("channels", "invalid", "at most", f"the site would have more than {MAX_CHANNELS} channels with those stored")]),
        },
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of ``/api/v1`` under the current app's settings."""
    config = current_app.config
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "personalize API",
            "version": str(config.get("VERSION", "1")),
            "description": "Events and recommendations for the widget (public key); catalogue, profiles and segments for "
                           "your servers (secret key). Every error is JSON of one shape: `{\"error\": {\"code\", \"message\", \"field\"}}`. "
                           "No string, key or parameter may hold a NUL character (\\u0000). A 400 an operation's schema cannot "
                           "foretell is listed in its `x-refusals`. See docs/api.md.",
        },
        "servers": [{"url": "/api/v1"}],
        "tags": [{"name": n} for n in ("public", "catalogue", "site", "profiles", "segments", "journeys", "webhooks", "operations")],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "publicKeyQuery": {"type": "apiKey", "in": "query", "name": "key", "description": "the site's public key pk_… (a secret key works too)"},
                "publicKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Personalize-Key", "description": "the site's public key pk_…"},
                "secretKey": {"type": "http", "scheme": "bearer", "description": "a secret key: Authorization: Bearer sk_…"},
            },
            "schemas": _schemas(config["MAX_EVENTS_PER_BATCH"], config["RECOMMENDATION_LIMIT_MAX"]),
            "responses": {
                name: {"description": description, "content": {JSON: {"schema": _ref("Error")}},
                       **({"headers": RETRY_AFTER} if name in ("TooManyRequests", "Unavailable") else {})}
                for name, description in ERROR_RESPONSES.items()
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json():
    response = current_app.json.response(openapi_document())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
