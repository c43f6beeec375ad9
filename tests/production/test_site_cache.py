"""A site read by public key is reused by a web process for SITE_CACHE_SECONDS, within bounds.

Changes made through the process itself (the admin, the API, any ORM write) count
in its very next answer; a change written by another process (here: a plain UPDATE
on a connection of its own, which this process hears nothing about) counts once
the bound has passed, and at once when the setting is 0.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from personalize.models import Site

SHOP, OTHER = "https://shop.example", "https://other.example"


def recs(client, site, origin):
    return client.get("/api/v1/recommendations", query_string={"key": site.public_key, "visitor": "v1", "limit": 3},
                      headers={"Origin": origin})


def write_elsewhere(app, site_id, origins):
    """The site's origins changed as another process would: a connection of its own, no ORM."""
    engine = sa.create_engine(app.config["DATABASE_URL"], poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(sa.update(Site.__table__).where(Site.__table__.c.id == site_id).values(allowed_origins=origins))
    finally:
        engine.dispose()


def test_a_change_made_through_this_process_counts_at_once(app, client, site):
    from personalize.sites import get_site, set_allowed_origins

    app.config["SITE_CACHE_SECONDS"] = 600.0
    assert recs(client, site, SHOP).status_code == 200
    set_allowed_origins(get_site(site.id), [OTHER])
    r = recs(client, site, SHOP)
    assert r.status_code == 403 and r.json["error"]["field"] == "Origin"
    assert recs(client, site, OTHER).status_code == 200


def test_a_change_made_elsewhere_counts_once_the_bound_has_passed(app, client, site):
    app.config["SITE_CACHE_SECONDS"] = 0.5
    assert recs(client, site, SHOP).status_code == 200
    write_elsewhere(app, site.id, [OTHER])
    time.sleep(0.6)
    r = recs(client, site, SHOP)
    assert r.status_code == 403 and r.json["error"]["field"] == "Origin"
    assert recs(client, site, OTHER).status_code == 200


def test_with_the_setting_at_zero_every_call_reads_the_site(app, client, site):
    app.config["SITE_CACHE_SECONDS"] = 0
    assert recs(client, site, SHOP).status_code == 200
    write_elsewhere(app, site.id, [OTHER])
    assert recs(client, site, SHOP).status_code == 403
    write_elsewhere(app, site.id, [SHOP])
    assert recs(client, site, SHOP).status_code == 200


def test_a_replaced_public_key_stops_working_in_this_process_at_once(app, client, site):
    from personalize.db import db
    from personalize.sites import get_site

    app.config["SITE_CACHE_SECONDS"] = 600.0
    assert recs(client, site, SHOP).status_code == 200
    s = get_site(site.id)
    s.public_key = "pk_replaced"
    db.session.commit()
    r = recs(client, site, SHOP)
    assert r.status_code == 401 and r.json["error"]["field"] == "key"
