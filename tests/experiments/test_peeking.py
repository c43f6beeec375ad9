"""Experiment intervals stay right when the owner looks every day; the naive ones do not.

Thousands of simulated 30-day experiments with a known lift, each looked at after every
day (vectorised numpy, fixed seed, about a second). The always-valid intervals must hold
the true lift at every daily look in at least 95 % of the experiments; the naive
fixed-sample interval, right about 95 % of the time at a single look, is not under
daily looks.
"""

from __future__ import annotations

import pytest

from personalize.insights.experiments import (
    ArmTotals,
    boundary_z,
    compare,
    optimal_ratio,
)
from personalize.insights.peeking import simulate_peeking

METRICS = ("conversion", "conversion_relative", "revenue_per_visitor", "revenue_per_visitor_relative")


@pytest.mark.parametrize("lift", [0.0, 0.15])
def test_always_valid_intervals_cover_the_true_lift_under_daily_peeking(lift):
    result = simulate_peeking(replications=2000, days=30, visitors_per_day=300, conversion=0.03, lift=lift, seed=16)
    for metric in METRICS:
        assert result.always_valid[metric] >= 0.95, (metric, result)
        assert result.naive[metric] < 0.85, (metric, result)  # 2000 runs: a binomial se of about 1 point
        # at one look fixed in advance the naive interval is right: peeking is what breaks it
        assert 0.93 <= result.naive_single_look[metric] <= 0.97, (metric, result)


def test_small_shops_too():
    """Fewer visitors a day: the variance is estimated from fewer buyers, the intervals still hold."""
    result = simulate_peeking(replications=1500, days=30, visitors_per_day=60, conversion=0.05, lift=0.2, seed=3)
    for metric in METRICS:
        assert result.always_valid[metric] >= 0.95, (metric, result)
        assert result.naive[metric] < result.always_valid[metric] - 0.1, (metric, result)


def test_the_boundary_is_narrowest_at_the_planned_size():
    z = boundary_z([500, 2000, 5000, 12_000, 50_000], n_target=5000)
    assert z[2] == pytest.approx(z.min(), rel=1e-3)
    assert 2.9 < z[2] < 3.2  # the price of looking at will: about 1.55 × the fixed-sample width
    assert z[0] > z[1] > z[2] < z[3] < z[4]
    assert 0.1 < optimal_ratio() < 0.15
    assert boundary_z(5000, alpha=0.025) > boundary_z(5000)  # two challengers: each at α/2


def test_compare_names_a_clear_winner_and_stays_quiet_when_early():
    control = ArmTotals(visitors=20_000, lists=60_000, clicks=1800, clickers=1500, buyers=600, revenue=36_000.0,
                        revenue_squares=36_000.0 * 60 * 2.7)
    better = ArmTotals(visitors=20_000, lists=60_000, clicks=2600, clickers=2100, buyers=780, revenue=46_800.0,
                       revenue_squares=46_800.0 * 60 * 2.7)
    out = compare(better, control)
    assert out["conversion"].verdict == "better"
    assert out["click_rate"].verdict == "better"
    assert out["conversion"].lift == pytest.approx(0.3)
    assert out["conversion"].lift_low < 0.3 < out["conversion"].lift_high
    assert compare(control, better)["conversion"].verdict == "worse"
    early = compare(ArmTotals(visitors=40, buyers=2), ArmTotals(visitors=40, buyers=1))
    assert {i.verdict for i in early.values()} == {"early"}
    assert early["conversion"].low is None
