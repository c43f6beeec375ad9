"""GET /api/v1/recommendations by customer_id or email: a server's question, with its secret key only."""

from __future__ import annotations


def ask(client, site, secret=True, **params):
    headers = {"Authorization": f"Bearer {site.secret_key}"} if secret else {}
    query = {"limit": 4, **params}
    if not secret:
        query["key"] = site.public_key
    return client.get("/api/v1/recommendations", query_string=query, headers=headers)


def test_a_server_asks_by_email_or_customer_id_and_gets_that_persons_list(client, trained, people):
    by_email = ask(client, trained, email="Ana@Example.com ")
    assert by_email.status_code == 200, by_email.json
    body = by_email.json
    assert body["strategy"] == "personal" and body["rec_id"].startswith("r_")
    assert all(i["reason"] for i in body["items"])
    assert all(i["id"].startswith("run-") for i in body["items"][:2]), body["items"]
    by_customer = ask(client, trained, customer_id="c-ana").json
    assert [i["id"] for i in by_customer["items"]] == [i["id"] for i in body["items"]]
    assert by_customer["rec_id"] != body["rec_id"]
    tea = ask(client, trained, email="ben@example.com").json
    assert tea["strategy"] == "personal" and tea["items"][0]["id"].startswith("tea-"), tea["items"]


def test_someone_unknown_gets_the_list_of_a_first_visit(client, trained, people):
    body = ask(client, trained, email="nobody@example.com").json
    assert body["strategy"] == "popular" and body["items"]


def test_a_public_key_never_looks_people_up(client, trained, people):
    for field, value in (("email", "ana@example.com"), ("customer_id", "c-ana")):
        r = ask(client, trained, secret=False, **{field: value})
        assert r.status_code == 403, r.json
        assert r.json["error"]["field"] == field and r.json["error"]["code"] == "secret_key_required"
        # a public key beside the secret one is still a public key's request
        r = client.get("/api/v1/recommendations", query_string={"key": trained.public_key, field: value},
                       headers={"Authorization": f"Bearer {trained.secret_key}"})
        assert r.status_code == 403 and r.json["error"]["field"] == field
        r = client.get("/api/v1/recommendations", query_string={field: value}, headers={"X-Personalize-Key": trained.public_key})
        assert r.status_code == 403 and r.json["error"]["field"] == field


def test_malformed_or_conflicting_person_fields_are_refused_by_name(client, trained, people):
    r = ask(client, trained, email="not-an-address")
    assert r.status_code == 400 and r.json["error"]["field"] == "email"
    r = ask(client, trained, email="ana@example.com", customer_id="c-ana")
    assert r.status_code == 400 and r.json["error"]["field"] == "customer_id"
    r = ask(client, trained, email="ana@example.com", visitor="runner-3")
    assert r.status_code == 400 and r.json["error"]["field"] == "email"
    r = ask(client, trained, customer_id="x" * 201)
    assert r.status_code == 400 and r.json["error"]["field"] == "customer_id"
    r = ask(client, trained, customer_id="bad\nid")
    assert r.status_code == 400 and r.json["error"]["field"] == "customer_id"


def test_a_site_only_reaches_its_own_people(client, trained, people):
    from personalize.sites import create_site

    other, other_secret = create_site("Other shop")
    r = client.get("/api/v1/recommendations", query_string={"email": "ana@example.com", "limit": 4},
                   headers={"Authorization": f"Bearer {other_secret}"})
    assert r.status_code == 200 and r.json["strategy"] != "personal"
    assert not r.json["items"] or all(i["id"] not in {"run-shoe", "run-sock"} for i in r.json["items"])
