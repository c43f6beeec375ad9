"""The lift of the personalized group over the holdout, with a 95 % confidence interval.

Both groups are compared per exposed visitor (everyone who was shown at least one
recommendation list in the window; in the holdout when one of those lists was a holdout
list), counting all their orders from the first exposure on, attributed or not: an
intention-to-treat comparison, so a visitor who ignored the recommendations still
counts in their group.

* Conversion rate: the difference of two proportions with the unpooled normal
  approximation, ``se = sqrt(p1(1-p1)/n1 + p0(1-p0)/n0)``.
* Revenue per visitor: the difference of two means with Welch's standard error,
  ``se = sqrt(s1²/n1 + s0²/n0)`` (normal approximation; with hundreds of visitors per
  group the sample means are close to normal even though revenue is skewed).
* Relative lift ``m1/m0 - 1``: the difference and its interval divided by the holdout's
  value, ``(m1 - m0)/m0`` from ``low/m0`` to ``high/m0``. One interval, so the chart (which
  draws the lift), the table and the verdict (which read the difference) always agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054
MIN_VISITORS = 30  # per group, before any interval is shown


@dataclass(frozen=True)
class Comparison:
    """One metric in both groups, their difference and the relative lift, each with a 95 % interval."""

    metric: str
    personalized: float
    holdout: float
    n_personalized: int
    n_holdout: int
    difference: float
    difference_low: float
    difference_high: float
    lift: float | None  # relative: 0.12 is +12 %
    lift_low: float | None
    lift_high: float | None

    @property
    def significant(self) -> bool:
        """The interval of the difference excludes zero."""
        return self.difference_low > 0 or self.difference_high < 0

    @property
    def verdict(self) -> str:
        """``better``, ``worse`` or ``unsure``: where the one interval lies (chart, table and text read this)."""
        return "better" if self.difference_low > 0 else ("worse" if self.difference_high < 0 else "unsure")


def _mean_var(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, var


def _relative(difference: float, low: float, high: float, m0: float) -> tuple[float | None, float | None, float | None]:
    """The difference and its interval relative to the holdout's value (None without a holdout value)."""
    if m0 <= 0:
        return None, None, None
    return difference / m0, low / m0, high / m0


def compare_rates(metric: str, conv1: int, n1: int, conv0: int, n0: int) -> Comparison | None:
    """Conversion rate of the personalized group (1) against the holdout (0); None with too few visitors."""
    if n1 < MIN_VISITORS or n0 < MIN_VISITORS:
        return None
    p1, p0 = conv1 / n1, conv0 / n0
    se1, se0 = math.sqrt(p1 * (1 - p1) / n1), math.sqrt(p0 * (1 - p0) / n0)
    return _compared(metric, p1, p0, n1, n0, math.hypot(se1, se0))


def compare_means(metric: str, values1: Sequence[float], values0: Sequence[float]) -> Comparison | None:
    """Mean per visitor of the personalized group (1) against the holdout (0); None with too few visitors."""
    n1, n0 = len(values1), len(values0)
    if n1 < MIN_VISITORS or n0 < MIN_VISITORS:
        return None
    m1, v1 = _mean_var(values1)
    m0, v0 = _mean_var(values0)
    se1, se0 = math.sqrt(v1 / n1), math.sqrt(v0 / n0)
    return _compared(metric, m1, m0, n1, n0, math.hypot(se1, se0))


def _compared(metric: str, m1: float, m0: float, n1: int, n0: int, se: float) -> Comparison:
    difference = m1 - m0
    low, high = difference - Z95 * se, difference + Z95 * se
    return Comparison(metric, m1, m0, n1, n0, difference, low, high, *_relative(difference, low, high, m0))
