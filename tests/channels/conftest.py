"""A trained shop whose runner and tea lover are known people (email, customer id)."""

from __future__ import annotations

import pytest


@pytest.fixture
def people(client, trained):
    """``{"runner": profile id, "tea": profile id}``: runner-3 is ana@example.com (customer c-ana),
    tea-4 is ben@example.com."""
    from personalize.profiles.identity import lookup

    r = client.post("/api/v1/events", json={"key": trained.public_key, "events": [
        {"id": "idf-1", "type": "identify", "visitor": "runner-3", "email": "ana@example.com", "customer_id": "c-ana"},
        {"id": "idf-2", "type": "identify", "visitor": "tea-4", "email": "ben@example.com"},
    ]})
    assert r.status_code == 202, r.json
    found = lookup(trained.id, "email", ["ana@example.com", "ben@example.com"])
    return {"runner": found["ana@example.com"], "tea": found["ben@example.com"]}
