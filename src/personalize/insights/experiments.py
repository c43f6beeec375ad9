"""Always-valid intervals for A/B/n experiments: the owner may look every day.

A fixed-sample 95 % interval (``difference ± 1.96 se``) is right 95 % of the time *at one
look decided in advance*. Looked at every day, and acted on the first day it excludes
zero, it is wrong far more often (see :mod:`personalize.insights.peeking`). Experiments
therefore show **confidence sequences**: intervals that contain the true difference at
every look at once, with probability at least 95 %, however often and whenever one looks.

The method is the normal-mixture boundary of the mixture sequential probability ratio
test (mSPRT; Robbins 1970; Johari, Koomen, Pekelis & Walsh, "Always valid inference:
continuous monitoring of A/B tests", Operations Research 2022) as a confidence sequence
(Howard, Ramdas, McAuliffe & Sekhon, "Time-uniform, nonparametric, nonasymptotic
confidence sequences", Annals of Statistics 2021), with the variance estimated from the
data (the asymptotic confidence sequences of Waudby-Smith, Arbour, Sinha, Kennedy &
Ramdas, 2021). For an estimate ``d`` with standard error ``se`` after ``n`` visitors per
arm, the interval is ``d ± z(n) · se`` with

    z(n)² = (1 + r) · (log(1 + 1/r) + 2 log(1/α)),   r = r* · n_target / n,

which is the mSPRT's acceptance region with the mixing variance chosen so that the
interval is narrowest at ``n_target`` visitors per arm (``r*`` solves
``1/r − log(1 + 1/r) = 2 log(1/α)``). At that point ``z ≈ 3.0`` instead of 1.96: the price
of looking as often as one likes. Before and long after it the interval is wider, but it
stays valid at every look; ``n_target`` changes only where it is tightest.

With more than one challenger, each is compared with the control at ``α / (arms − 1)``
(Bonferroni), so that "some arm beats the control" is wrong at most 5 % of the time.

Everything here is plain numpy on sufficient statistics (visitors, successes, sums and
sums of squares), vectorised so the simulation of :mod:`personalize.insights.peeking`
runs the very functions the experiment page uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
Z_FIXED = 1.959963984540054
MIN_VISITORS = 100  # per arm, before any interval is shown
MIN_SUCCESSES = 5  # converting (or clicking, or buying) visitors per arm, before an interval is shown
DEFAULT_TARGET = 5_000  # visitors per arm where the interval is narrowest


def optimal_ratio(alpha: float = ALPHA) -> float:
    """``r*``: the ratio of mixing to data information where the boundary is tightest."""
    target = 2.0 * math.log(1.0 / alpha)
    u = target + math.log1p(target)  # Newton on f(u) = u - log(1 + u) - target, u = 1/r
    for _ in range(50):
        step = (u - math.log1p(u) - target) / (1.0 - 1.0 / (1.0 + u))
        u -= step
        if abs(step) < 1e-12:
            break
    return 1.0 / u


def boundary_z(n, n_target: float = DEFAULT_TARGET, alpha: float = ALPHA):
    """How many standard errors the always-valid interval spans on each side after ``n``
    visitors per arm (scalar or array)."""
    n = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
    r = optimal_ratio(alpha) * float(n_target) / n
    return np.sqrt((1.0 + r) * (np.log1p(1.0 / r) + 2.0 * math.log(1.0 / alpha)))


@dataclass(frozen=True)
class Interval:
    """A challenger against the control on one metric: per-visitor values, their difference and the
    relative lift, each with its interval (``None`` while too early to tell)."""

    metric: str
    control: float
    arm: float
    difference: float
    low: float | None
    high: float | None
    lift: float | None  # relative: 0.12 is +12 %
    lift_low: float | None
    lift_high: float | None

    @property
    def verdict(self) -> str:
        """``"better"`` / ``"worse"`` when the interval excludes zero, ``"unclear"`` when it does
        not, ``"early"`` before there is an interval."""
        if self.low is None or self.high is None:
            return "early"
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "unclear"


def mean_and_se(n, total, squares):
    """Per-visitor mean and its standard error from sufficient statistics (arrays or scalars)."""
    n = np.asarray(n, dtype=np.float64)
    safe = np.maximum(n, 1.0)
    mean = np.asarray(total, dtype=np.float64) / safe
    var = np.maximum(np.asarray(squares, dtype=np.float64) / safe - mean**2, 0.0) * safe / np.maximum(safe - 1.0, 1.0)
    return mean, np.sqrt(var / safe)


def difference_intervals(n1, sum1, sq1, n0, sum0, sq0, *, z):
    """``(difference, low, high, lift, lift_low, lift_high)`` of arm 1 over control 0, vectorised.

    ``z`` is the number of standard errors on each side: :func:`boundary_z` for the always-valid
    interval, :data:`Z_FIXED` for the naive one. The relative lift's interval comes from the
    same ``z`` on the log of the ratio of means (delta method); NaN where a mean is zero.
    """
    m1, se1 = mean_and_se(n1, sum1, sq1)
    m0, se0 = mean_and_se(n0, sum0, sq0)
    diff = m1 - m0
    half = z * np.hypot(se1, se0)
    with np.errstate(divide="ignore", invalid="ignore"):
        positive = (m1 > 0) & (m0 > 0)
        se_log = np.sqrt((se1 / m1) ** 2 + (se0 / m0) ** 2)
        log_ratio = np.log(m1 / m0)
        lift = np.where(m0 > 0, m1 / m0 - 1.0, np.nan)
        lift_low = np.where(positive, np.exp(log_ratio - z * se_log) - 1.0, np.nan)
        lift_high = np.where(positive, np.exp(log_ratio + z * se_log) - 1.0, np.nan)
    return diff, diff - half, diff + half, lift, lift_low, lift_high


def ready(n1, successes1, n0, successes0):
    """Whether both arms have enough visitors, and enough who did the thing, for an interval."""
    return ((np.asarray(n1) >= MIN_VISITORS) & (np.asarray(n0) >= MIN_VISITORS)
            & (np.asarray(successes1) >= MIN_SUCCESSES) & (np.asarray(successes0) >= MIN_SUCCESSES))


@dataclass(frozen=True)
class ArmTotals:
    """What one arm's visitors did: the sufficient statistics of every per-visitor metric."""

    visitors: int = 0
    lists: int = 0  # recommendation lists shown
    clicks: int = 0
    clickers: int = 0  # visitors who clicked at least once
    buyers: int = 0  # visitors who ordered at least once after their first list
    revenue: float = 0.0  # what they spent from their first list on
    revenue_squares: float = 0.0  # sum over visitors of (their revenue)²

    @property
    def ctr(self) -> float:
        """Clicks per list shown."""
        return self.clicks / self.lists if self.lists else 0.0

    @property
    def click_rate(self) -> float:
        return self.clickers / self.visitors if self.visitors else 0.0

    @property
    def conversion(self) -> float:
        return self.buyers / self.visitors if self.visitors else 0.0

    @property
    def revenue_per_visitor(self) -> float:
        return self.revenue / self.visitors if self.visitors else 0.0


METRICS = ("click_rate", "conversion", "revenue_per_visitor")


def compare(arm: ArmTotals, control: ArmTotals, *, challengers: int = 1, n_target: float = DEFAULT_TARGET,
            alpha: float = ALPHA) -> dict[str, Interval]:
    """The arm against the control on each per-visitor metric, with always-valid intervals at
    ``alpha / challengers`` each."""
    a = alpha / max(challengers, 1)
    n = (arm.visitors + control.visitors) / 2.0
    z = float(boundary_z(n, n_target, a))
    stats = {
        "click_rate": (arm.clickers, arm.clickers, control.clickers, control.clickers, arm.clickers, control.clickers),
        "conversion": (arm.buyers, arm.buyers, control.buyers, control.buyers, arm.buyers, control.buyers),
        "revenue_per_visitor": (arm.revenue, arm.revenue_squares, control.revenue, control.revenue_squares, arm.buyers, control.buyers),
    }
    out = {}
    for metric, (s1, q1, s0, q0, k1, k0) in stats.items():
        diff, low, high, lift, lift_low, lift_high = (float(v) for v in difference_intervals(
            arm.visitors, s1, q1, control.visitors, s0, q0, z=z))
        shown = bool(ready(arm.visitors, k1, control.visitors, k0))
        m1 = s1 / arm.visitors if arm.visitors else 0.0
        m0 = s0 / control.visitors if control.visitors else 0.0
        out[metric] = Interval(
            metric, m0, m1, diff if arm.visitors and control.visitors else 0.0,
            low if shown else None, high if shown else None,
            None if math.isnan(lift) else lift,
            None if not shown or math.isnan(lift_low) else lift_low,
            None if not shown or math.isnan(lift_high) else lift_high,
        )
    return out
