"""The dashboard's lift interval (``personalize.insights.stats``) on simulated holdout tests.

The relative lift ``m1/m0 - 1`` is what the chart draws and the owner reads. Its interval must
cover the true lift about 95 % of the time, also with a small holdout whose own rate is noisy,
and it must agree with the difference's verdict (better, worse, unsure) on every data set.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from personalize.insights.stats import Z95, compare_means, compare_rates, relative_interval

# (visitors, holdout share, holdout conversion rate, true relative lift): shops of different sizes
CASES = [(2000, 0.2, 0.03, 0.10), (1000, 0.2, 0.05, 0.30), (20000, 0.1, 0.02, 0.05)]


def _coverage(n: int, share: float, p0: float, lift: float, runs: int, seed: int) -> tuple[float, float]:
    """How often the served interval and the plain ``difference / m0`` one hold the true lift."""
    rng = np.random.default_rng(seed)
    n0 = int(n * share)
    n1 = n - n0
    c1 = rng.binomial(n1, p0 * (1 + lift), runs)
    c0 = rng.binomial(n0, p0, runs)
    served = divided = counted = 0
    for a, b in zip(c1.tolist(), c0.tolist(), strict=True):
        c = compare_rates("conversion", a, n1, b, n0)
        if c is None or c.lift_low is None:
            continue
        counted += 1
        served += c.lift_low <= lift <= c.lift_high
        divided += c.difference_low / c.holdout <= lift <= c.difference_high / c.holdout
    return served / counted, divided / counted


@pytest.mark.parametrize(("n", "share", "p0", "lift"), CASES)
def test_the_lift_interval_covers_the_true_lift(n, share, p0, lift):
    served, divided = _coverage(n, share, p0, lift, runs=6000, seed=n)
    assert 0.93 <= served <= 0.97, f"the lift's interval held the true lift {served:.1%} of the time"
    assert served > divided, "dividing the difference's interval by a noisy holdout value covers less"


def test_the_lift_and_the_difference_give_the_same_verdict():
    rng = random.Random(7)
    for _ in range(3000):
        n1, n0 = rng.randint(30, 3000), rng.randint(30, 800)
        c = compare_rates("conversion", rng.randint(0, n1 // 5), n1, rng.randint(1, n0 // 5), n0)
        if c is None or c.lift_low is None:
            continue
        lift_says = "better" if c.lift_low > 0 else ("worse" if c.lift_high < 0 else "unsure")
        assert lift_says == c.verdict, (c, lift_says)
        assert c.lift_low <= c.lift <= c.lift_high


def test_the_revenue_lift_interval_is_fiellers():
    rng = random.Random(5)
    a = [rng.expovariate(1 / 12.0) if rng.random() < 0.3 else 0.0 for _ in range(400)]
    b = [rng.expovariate(1 / 10.0) if rng.random() < 0.3 else 0.0 for _ in range(100)]
    c = compare_means("revenue_per_visitor", a, b)
    se1 = math.sqrt(np.var(a, ddof=1) / len(a))
    se0 = math.sqrt(np.var(b, ddof=1) / len(b))
    for r in (c.lift_low + 1, c.lift_high + 1):  # each end: m1 - r m0 sits exactly z standard errors from zero
        assert abs(c.personalized - r * c.holdout) == pytest.approx(Z95 * math.hypot(se1, r * se0), rel=1e-9)


def test_a_holdout_value_near_zero_falls_back_to_the_divided_interval():
    lift, low, high = relative_interval(0.05, 0.001, 0.01, 0.002)  # the holdout's value is within noise of zero
    se = math.hypot(0.01, 0.002)
    assert lift == pytest.approx(49.0) and low == pytest.approx((0.049 - Z95 * se) / 0.001)
    assert high == pytest.approx((0.049 + Z95 * se) / 0.001)
    assert relative_interval(0.05, 0.0, 0.01, 0.0) == (None, None, None)
