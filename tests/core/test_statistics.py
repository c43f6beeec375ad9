"""A bulk order import leaves the query planner's statistics current, so the first
requests after an import do not run on plans made for empty tables."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import text

from personalize.db import db
from personalize.profiles import import_orders
from personalize.records import OrderLine, OrderRecord
from personalize.sites import create_site


def test_an_order_import_refreshes_the_planner_statistics(ctx):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("planner statistics are PostgreSQL's (SQLite gets PRAGMA optimize, which keeps no record)")
    site, _ = create_site("Import shop")
    when = datetime(2011, 5, 1, 10, 0)
    orders = [
        OrderRecord(str(n), when, (OrderLine("A", 1, 2.0, "Mug"), OrderLine("B", 2, 3.0, "Plate")), customer_id=f"c{n % 7}")
        for n in range(40)
    ]
    analysed = text("SELECT relname, last_analyze FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname IN ('orders', 'interactions', 'products', 'profiles', 'identities')")
    db.session.commit()
    before = dict(db.session.execute(analysed).all())  # earlier tests may have analysed this schema already

    result = import_orders(site.id, orders)
    assert result.orders == 40
    db.session.commit()
    db.session.execute(text("SELECT pg_stat_clear_snapshot()"))
    after = dict(db.session.execute(analysed).all())
    assert sorted(after) == ["identities", "interactions", "orders", "products", "profiles"]
    for table, at in after.items():
        assert at is not None and (before[table] is None or at > before[table]), table


def test_the_operator_is_told_when_autovacuum_is_off(ctx):
    from personalize.db import maintenance_warnings

    warnings = maintenance_warnings()
    if db.engine.dialect.name != "postgresql":
        assert warnings == [], "SQLite needs no vacuuming to keep its plans"
        return
    off = db.session.execute(text("SHOW autovacuum")).scalar() == "off"
    assert bool(warnings) == off
    if off:
        assert "autovacuum is off" in warnings[0] and "VACUUM ANALYZE" in warnings[0]
