"""The model's clock: a shop whose data ended long before training is checked on its own last
weeks and ranked as of the end of its data, with the clock running on from there."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np

from personalize.catalog import upsert_products
from personalize.profiles import import_orders
from personalize.recommend.data import PURCHASE, VIEW, HistoryArrays
from personalize.recommend.engine import Recommender
from personalize.recommend.service import model_cache, train_site
from personalize.recommend.synthetic import generate
from personalize.segments import synthetic
from personalize.sites import create_site

ENDED = datetime(2023, 3, 1)  # years before any run of this test


def test_an_imported_history_is_checked_on_its_own_last_weeks_and_ranked_as_of_its_end(ctx):
    site, _secret = create_site("Old history")
    products, orders = synthetic.records(synthetic.generate(n_customers=400, n_categories=16, days=300, seed=5), ENDED)
    upsert_products(site.id, products)
    import_orders(site.id, orders)
    before = time.time()
    summary = train_site(site.id)
    after = time.time()
    newest = max(o.occurred_at for o in orders).replace(tzinfo=UTC).timestamp()
    # the self-check found validation customers in the data's own last window (with the wall
    # clock as "now" the window is years after the data and empty: "not checked: 0 customers")
    assert summary["check"].get("customers", 0) >= 30, summary["description"]
    assert "not checked" not in summary["description"]
    # the owner is told where the data ends and what that means
    assert f"The newest data is from {datetime.fromtimestamp(newest, UTC).date().isoformat()}" in summary["description"]
    # the served model ranks as of the end of the data, its clock moving on with the wall clock
    model = model_cache().get(site.id).model
    assert newest < model.fitted_at <= newest + 1.0
    wall = time.time()
    assert newest - 1.0 <= model.clock(wall) - (wall - after) <= newest + 1.0 + (after - before)


def test_a_live_shops_clock_is_the_wall_clock_and_it_survives_saving(tmp_path):
    shop = generate(n_items=200, n_users=300, n_interactions=12_000, seed=3)
    model = Recommender.fit(shop.log, shop.items)
    assert model.clock(1_000.0) == 1_000.0, "a model fitted without an offset ranks at the wall clock"
    model.clock_offset = 86_400.0 * 365
    model.save(tmp_path / "m.model")
    loaded = Recommender.load(tmp_path / "m.model")
    assert loaded.clock(2e9) == 2e9 - 86_400.0 * 365


def test_an_event_after_the_models_clock_counts_as_just_now():
    shop = generate(n_items=200, n_users=300, n_interactions=12_000, seed=3)
    model = Recommender.fit(shop.log, shop.items, params={"serve": "ranker"})  # the ranker reads recencies
    now = model.fitted_at
    items = shop.log.item[shop.log.user == 0][:6].astype(np.int64)
    kinds = np.array([PURCHASE] * 5 + [VIEW], dtype=np.int64)

    def listed(last_ts: float) -> list[tuple[int, float]]:
        ts = np.array([now - 86_400 * (10 - i) for i in range(5)] + [last_ts], dtype=np.float64)
        return [(s.item, round(s.score, 6)) for s in model.recommend(HistoryArrays(items, kinds, ts, np.ones(6)), k=20, now=now)]

    # a view stamped a year after the clock ranks exactly as one stamped at the clock
    assert listed(now + 86_400 * 365) == listed(now)
