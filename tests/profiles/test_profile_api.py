"""The profile API: the 360° view, attributes with source and time, export, erase, merge, tokens."""

from __future__ import annotations

from sqlalchemy import func, select

from personalize.db import db
from personalize.models import Event, Identity, Interaction, Order
from personalize.profiles import profile_for_visitor
from personalize.profiles.trust import sign_identity


def auth(site) -> dict:
    return {"Authorization": f"Bearer {site.secret_key}"}


def test_profile_view_has_attributes_identities_timeline_scores_segments(client, site):
    pid = profile_for_visitor(site.id, "runner-3")
    r = client.patch(f"/api/v1/profiles/{pid}", json={"attributes": {"tier": "gold", "age": 41}, "source": "crm", "at": "2024-01-02T03:04:05Z"}, headers=auth(site))
    assert r.status_code == 200 and sorted(r.json["changed"]) == ["age", "tier"]
    body = client.get(f"/api/v1/profiles/{pid}", headers=auth(site)).json
    assert body["attributes"]["tier"] == {"value": "gold", "source": "crm", "updated_at": "2024-01-02T03:04:05Z"}
    assert body["identities"] == {"visitor": ["runner-3"]}
    assert body["timeline"]["events"]["product_viewed"]["count"] == 2 + 3 % 3
    assert body["timeline"]["orders"]["count"] == 1
    assert body["scores"] is None and body["segments"] == []
    # an older value does not overwrite a newer one
    client.patch(f"/api/v1/profiles/{pid}", json={"attributes": {"tier": "bronze"}, "source": "shop", "at": "2023-01-01T00:00:00Z"}, headers=auth(site))
    assert client.get(f"/api/v1/profiles/{pid}", headers=auth(site)).json["attributes"]["tier"]["value"] == "gold"
    bad = client.patch(f"/api/v1/profiles/{pid}", json={"attributes": {"bad name": 1}}, headers=auth(site))
    assert bad.status_code == 400 and bad.json["error"]["field"] == "attributes.bad name"
    assert client.get("/api/v1/profiles?visitor=runner-3", headers=auth(site)).json["id"] == pid
    assert client.get(f"/api/v1/profiles/{pid}", headers={"Authorization": f"Bearer {site.public_key}"}).status_code == 403
    assert client.get("/api/v1/profiles/999999", headers=auth(site)).status_code == 404


def test_export_returns_everything_about_a_person(client, site):
    pid = profile_for_visitor(site.id, "tea-2")
    data = client.get(f"/api/v1/profiles/{pid}/export", headers=auth(site)).json
    assert {"profile", "identities", "attributes", "events", "orders", "interactions", "scores", "segments", "contact_log"} <= set(data)
    assert len(data["events"]) == 2 + 2 % 3 + 1 and len(data["orders"]) == 1 and data["interactions"]


def test_hook_profile_erased(app, client, site):
    """DELETE erases the profile everywhere, then tells plugins who it was."""
    from personalize import hookimpl

    heard = []

    class Listener:
        @hookimpl
        def profile_erased(self, site_id, profile_id, identities):
            heard.append((site_id, profile_id, identities))

    app.extensions["personalize.plugins"].pm.register(Listener())
    pid = profile_for_visitor(site.id, "tea-1")
    r = client.delete(f"/api/v1/profiles/{pid}", headers=auth(site))
    assert r.status_code == 200 and r.json["erased"] == pid
    assert heard == [(site.id, pid, {"visitor": ["tea-1"]})]
    for model in (Event, Interaction, Order, Identity):
        assert db.session.scalar(select(func.count()).select_from(model).where(model.profile_id == pid)) == 0
    assert client.get(f"/api/v1/profiles/{pid}", headers=auth(site)).status_code == 404


def test_merge_api_token_and_signing_secret(client, site):
    a, b = profile_for_visitor(site.id, "runner-1"), profile_for_visitor(site.id, "runner-2")
    r = client.post(f"/api/v1/profiles/{a}/merge", json={"profile_id": b}, headers=auth(site))
    assert r.status_code == 200 and r.json["moved"]["events"] > 0
    assert client.get(f"/api/v1/profiles/{b}", headers=auth(site)).json["merged_from"] == b
    secret = client.get("/api/v1/profiles/signing-secret", headers=auth(site)).json["signing_secret"]
    token = client.post("/api/v1/profiles/tokens", json={"email": "eve@example.com"}, headers=auth(site)).json["token"]
    r = client.post("/api/v1/events", json={"key": site.public_key, "events": [
        {"id": "tok-1", "type": "identify", "visitor": "eve-phone", "token": token},
        {"id": "sig-1", "type": "identify", "visitor": "eve-laptop", "email": "eve@example.com",
         "signature": sign_identity(secret, "eve@example.com", None)},
    ]})
    assert r.status_code == 202
    assert profile_for_visitor(site.id, "eve-phone") == profile_for_visitor(site.id, "eve-laptop")
    rotated = client.post("/api/v1/profiles/signing-secret", headers=auth(site)).json["signing_secret"]
    assert rotated != secret


def test_device_facts_from_the_request(client, site):
    ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1"
    client.post("/api/v1/events", json={"key": site.public_key, "events": [{"id": "d1", "type": "page_viewed", "visitor": "mob"}]},
                headers={"User-Agent": ua, "Accept-Language": "fr-FR,fr;q=0.9"})
    pid = profile_for_visitor(site.id, "mob")
    attrs = client.get(f"/api/v1/profiles/{pid}", headers=auth(site)).json["attributes"]
    assert {k: v["value"] for k, v in attrs.items()} == {"device": "mobile", "os": "ios", "browser": "safari", "language": "fr"}
    assert attrs["device"]["source"] == "events"
