"""How often do an experiment's intervals hold when the owner looks every day?

A vectorised simulation of many two-arm experiments with a known true lift: each day
both arms get visitors, some convert, and a buyer spends a skewed (log-normal) amount.
After every day both the always-valid interval of :mod:`personalize.insights.experiments`
and the naive fixed-sample one are computed from the running totals, exactly as the
experiment page computes them. An interval sequence *covers* the truth when every daily
interval shown contains it: that is what an owner who looks daily relies on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .experiments import DEFAULT_TARGET, Z_FIXED, boundary_z, difference_intervals, ready


@dataclass(frozen=True)
class Coverage:
    """Shares of simulated experiments, over all daily looks at once."""

    replications: int
    always_valid: dict[str, float]  # metric -> share whose every daily interval held the truth
    naive: dict[str, float]
    naive_single_look: dict[str, float]  # the naive interval at the last day alone (≈ 95 %)
    always_valid_width: dict[str, float]  # mean half-width at the last day, over the naive one's


def simulate_peeking(
    *, replications: int = 2000, days: int = 30, visitors_per_day: int = 300, conversion: float = 0.03,
    lift: float = 0.10, order_value: float = 60.0, order_sigma: float = 1.0, n_target: float = DEFAULT_TARGET,
    seed: int = 16,
) -> Coverage:
    """Coverage of the true conversion and revenue-per-visitor differences (absolute and
    relative) under daily looks, for ``replications`` experiments of ``days`` days.

    The challenger converts at ``conversion · (1 + lift)``; every buyer spends a log-normal
    amount with mean ``order_value`` (``order_sigma`` its log's spread).
    """
    rng = np.random.default_rng(seed)
    p = np.array([conversion, conversion * (1.0 + lift)])  # arm 0 control, 1 challenger
    mu = np.log(order_value) - order_sigma**2 / 2.0
    shape = (replications, days, 2)
    n_day = np.full(shape, visitors_per_day, dtype=np.float64)
    buyers_day = rng.binomial(visitors_per_day, np.broadcast_to(p, shape)).astype(np.float64)
    # each buyer's amount, summed (and squared) per replication, day and arm
    counts = buyers_day.astype(np.int64).ravel()
    group = np.repeat(np.arange(counts.size), counts)
    amounts = rng.lognormal(mu, order_sigma, size=group.size)
    revenue_day = np.bincount(group, weights=amounts, minlength=counts.size).reshape(shape)
    squares_day = np.bincount(group, weights=amounts**2, minlength=counts.size).reshape(shape)

    n, buyers, revenue, squares = (np.cumsum(a, axis=1) for a in (n_day, buyers_day, revenue_day, squares_day))
    truth = {
        "conversion": (p[1] - p[0], lift),
        "revenue_per_visitor": ((p[1] - p[0]) * order_value, lift),
    }
    sums = {"conversion": (buyers, buyers), "revenue_per_visitor": (revenue, squares)}
    z_valid = boundary_z(n[..., 0], n_target)
    shown = ready(n[..., 1], buyers[..., 1], n[..., 0], buyers[..., 0])
    always, naive, single, width = {}, {}, {}, {}
    for metric, (total, sq) in sums.items():
        diff_true, lift_true = truth[metric]
        for kind, z, out in (("valid", z_valid, always), ("naive", Z_FIXED, naive)):
            _d, low, high, _l, lift_low, lift_high = difference_intervals(
                n[..., 1], total[..., 1], sq[..., 1], n[..., 0], total[..., 0], sq[..., 0], z=z)
            held = ~shown | ((low <= diff_true) & (diff_true <= high))
            held_rel = ~shown | ((lift_low <= lift_true) & (lift_true <= lift_high))
            out[metric] = float(held.all(axis=1).mean())
            out[metric + "_relative"] = float(held_rel.all(axis=1).mean())
            if kind == "naive":
                single[metric] = float(held[:, -1].mean())
                single[metric + "_relative"] = float(held_rel[:, -1].mean())
            else:
                width[metric] = float(np.mean(z_valid[:, -1]) / Z_FIXED)
    return Coverage(replications, always, naive, single, width)
