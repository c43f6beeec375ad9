"""The value/attrition/potential models recover what simulated customers were drawn from."""

from __future__ import annotations

import numpy as np

from personalize.segments.scores import choose_clusters, cluster_names, quintile, rfm_segment
from personalize.segments.vap import BgNbd, fit_bgnbd, fit_gamma_gamma


def simulate_bgnbd(n: int, r: float, alpha: float, a: float, b: float, T: float, seed: int = 0):
    """Customers who buy at Poisson rate λ ~ Gamma(r, α) and leave after a purchase with p ~ Beta(a, b)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    x = np.zeros(n)
    tx = np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1.0 / lam[i])
            if t > T:
                break
            x[i] += 1
            tx[i] = t
            if rng.random() < p[i]:
                break
    return x, tx, np.full(n, T)


def test_bgnbd_recovers_its_parameters():
    true = dict(r=0.8, alpha=6.0, a=0.9, b=3.0)
    x, tx, T = simulate_bgnbd(6000, T=52.0, **true)
    fitted = fit_bgnbd(x, tx, T)
    assert abs(fitted.r - true["r"]) / true["r"] < 0.2
    assert abs(fitted.alpha - true["alpha"]) / true["alpha"] < 0.25
    assert abs(fitted.a / (fitted.a + fitted.b) - 0.9 / 3.9) < 0.06, "the mean drop-out probability"


def test_bgnbd_predictions_behave():
    model = BgNbd(0.8, 6.0, 0.9, 3.0)
    # no repeat purchase: certainly alive by the model; a long silence after many purchases: likely gone
    assert model.p_alive(np.array([0.0]), np.array([0.0]), np.array([52.0]))[0] == 1.0
    recent, silent = model.p_alive(np.array([10.0, 10.0]), np.array([51.0, 5.0]), np.array([52.0, 52.0]))
    assert recent > 0.9 and silent < 0.2
    busy, quiet = model.expected_purchases(52.0, np.array([10.0, 1.0]), np.array([51.0, 51.0]), np.array([52.0, 52.0]))
    assert busy > quiet > 0


def test_gamma_gamma_shrinks_towards_the_mean():
    rng = np.random.default_rng(3)
    n = rng.integers(1, 10, 3000).astype(float)
    means = rng.gamma(4.0, 10.0, 3000)
    gg = fit_gamma_gamma(n, means)
    one, many = gg.expected_order_value(np.array([1.0, 20.0]), np.array([500.0, 500.0]))
    assert one < many <= 500.0 * 1.05, "a single big order says less than twenty"


def test_rfm_and_cluster_names():
    assert quintile(np.array([1.0, 2.0, 3.0, 4.0, 5.0])).tolist() == [1, 2, 3, 4, 5]
    assert rfm_segment(5, 5) == "Champions" and rfm_segment(1, 1) == "Hibernating" and rfm_segment(1, 4) == "At risk"
    rng = np.random.default_rng(0)
    loyal = np.column_stack([rng.normal(3, 0.2, 300), rng.normal(5, 0.2, 300), rng.normal(2, 0.3, 300), rng.normal(18, 1, 300)])
    gone = np.column_stack([rng.normal(0.5, 0.2, 300), rng.normal(3, 0.2, 300), rng.normal(15, 0.5, 300), rng.normal(17, 1, 300)])
    features = np.vstack([loyal, gone])
    labels, k, _ = choose_clusters(features)
    assert k == 2
    names = cluster_names(features, labels)
    assert names[labels[0]].startswith("Frequent big-basket buyers, active")
    assert names[labels[-1]].startswith("One-off small-basket buyers, lapsed")
