"""Test and learn: the holdout group, attribution of sales to recommendations, and the lift
of personalized recommendations over the non-personalized holdout."""

from .holdout import (
    DEFAULT_SHARE,
    MAX_SHARE,
    holdout_share,
    in_holdout,
    profile_in_holdout,
    set_holdout_share,
)
from .report import Report, site_report

__all__ = ["DEFAULT_SHARE", "MAX_SHARE", "Report", "holdout_share", "in_holdout", "profile_in_holdout", "set_holdout_share", "site_report"]
