"""Purchase propensity: calibrated on shops whose true purchase probabilities are known,
deterministic, and honest about what it cannot learn (small shops, no categories)."""

from __future__ import annotations

import numpy as np
import pytest

from personalize.segments import synthetic
from personalize.segments.propensity import (
    CategoryHistory,
    OrderHistory,
    category_propensity,
    customer_state,
    expected_calibration_error,
    order_propensity,
    ordered_in,
    quality,
    reliability,
)
from personalize.segments.vap import BgNbd


@pytest.fixture(scope="module")
def shop():
    return synthetic.generate(n_customers=1500, seed=3)


@pytest.fixture(scope="module")
def ordering(shop):
    return order_propensity(shop.orders, shop.now)


def test_order_propensity_matches_the_true_probabilities(shop, ordering):
    p = ordering.probability
    assert ordering.details["model"] == "gradient boosting"
    assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all(), "every customer is scored"
    # calibrated: in every band of prediction, the customers' true probabilities average what was predicted
    assert expected_calibration_error(p, shop.p_order) < 0.03
    for band in reliability(p, shop.p_order):
        if band["count"] >= 100:
            assert abs(band["predicted"] - band["observed"]) < 0.05, band
    assert abs(p.mean() - shop.p_order.mean()) < 0.02
    # and it tells customers apart: the ranking follows the true probabilities
    assert np.corrcoef(p, shop.p_order)[0, 1] > 0.7
    truth = ordered_in(shop.orders, shop.now, shop.now + 30)
    assert quality(p, truth)["auc"] > 0.8


def test_a_customer_with_one_order_is_scored(shop, ordering):
    counts = np.bincount(shop.orders.customer[shop.orders.day <= shop.now], minlength=shop.orders.n_customers)
    one = counts == 1
    assert one.sum() > 100
    assert np.isfinite(ordering.probability[one]).all()
    # one order long ago says less than one order last week
    state = customer_state(shop.orders, shop.now)
    recency = state.features[:, 1]
    recent, old = one & (recency < 120), one & (recency > 300)
    assert recent.sum() > 20 and old.sum() > 20
    assert ordering.probability[recent].mean() > ordering.probability[old].mean()


def test_the_same_history_gives_the_same_scores(shop, ordering):
    again = order_propensity(shop.orders, shop.now)
    assert np.array_equal(again.probability, ordering.probability)
    likely = category_propensity(shop.orders, shop.categories, shop.now)
    twice = category_propensity(shop.orders, shop.categories, shop.now)
    assert np.array_equal(likely.probability, twice.probability) and np.array_equal(likely.category, twice.category)


def test_category_propensity_matches_the_true_probabilities(shop):
    likely = category_propensity(shop.orders, shop.categories, shop.now)
    assert likely.details["model"] == "gradient boosting"
    pairs = likely.pairs
    true = shop.p_category[pairs.customer, pairs.category]
    assert expected_calibration_error(likely.scores, true) < 0.015
    assert abs(likely.scores.mean() - true.mean()) < 0.01
    assert np.corrcoef(likely.scores, true)[0, 1] > 0.6
    # at most three per customer, likeliest first, and everyone with an order has some
    counts = np.bincount(likely.customer, minlength=shop.orders.n_customers)
    assert counts.max() == 3 and (counts > 0).all()
    for c in range(0, shop.orders.n_customers, 97):
        mine = likely.probability[likely.customer == c]
        assert (np.diff(mine) <= 0).all()
    # the top category is personal: its true probability beats that of the shop's most bought category
    first = np.r_[True, likely.customer[1:] != likely.customer[:-1]]
    top = shop.p_category[likely.customer[first], likely.category[first]].mean()
    popular = np.bincount(shop.categories.category).argmax()
    assert top > shop.p_category[:, popular].mean() * 1.1  # a model of popularity alone would give 1.0


def test_no_categories_means_none_are_invented(shop):
    empty = CategoryHistory(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int64), [])
    likely = category_propensity(shop.orders, empty, shop.now)
    assert len(likely.customer) == 0 and likely.details == {"model": "none", "reason": "no categories"}


def test_a_shop_too_small_to_learn_from_gets_the_fallback():
    rng = np.random.default_rng(1)
    customer = rng.integers(0, 30, 60)
    day = rng.uniform(0, 200, 60)
    h = OrderHistory(customer, day, np.full(60, 10.0), 30)
    fallback = np.linspace(0.1, 0.4, 30)
    got = order_propensity(h, 200.0, fallback=fallback)
    assert got.details["model"] == "bgnbd"
    known = np.isfinite(got.probability)
    assert np.array_equal(got.probability[known], fallback[known])
    assert order_propensity(h, 200.0).details["model"] == "none"


def test_bgnbd_probability_of_an_order_agrees_with_simulation():
    """P(an order in the next t) from BG/NBD's closed form, against simulated futures of the same customers."""
    r, alpha, a, b = 0.8, 6.0, 0.9, 3.0
    rng = np.random.default_rng(7)
    n, T, horizon = 20000, 40.0, 4.0
    lam, drop = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n)
    x, tx, ordered = np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool)
    for i in range(n):
        t, alive = 0.0, True
        while alive:
            t += rng.exponential(1 / lam[i])
            if t > T + horizon:
                break
            if t > T:
                ordered[i] = True
                break
            x[i], tx[i] = x[i] + 1, t
            alive = rng.random() >= drop[i]
    p = BgNbd(r, alpha, a, b).p_order(horizon, x, tx, np.full(n, T))
    # by customers' history: the predicted share and the simulated share agree
    for sel in (x == 0, (x >= 1) & (x < 4), x >= 4):
        assert abs(p[sel].mean() - ordered[sel].mean()) < 0.02
    assert expected_calibration_error(p, ordered) < 0.02
