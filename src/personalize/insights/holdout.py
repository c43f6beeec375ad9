"""The holdout, as the reports see it: assignment lives with the serving path in
:mod:`personalize.recommend.holdout` (a lower layer); this module names it for the insights."""

from ..recommend.holdout import (
    DEFAULT_SHARE,
    HOLDOUT,
    HOLDOUT_REASON,
    MAX_SHARE,
    hash_point,
    holdout_share,
    in_holdout,
    profile_in_holdout,
    set_holdout_share,
)
from ..recommend.service import holdout_items

__all__ = ["DEFAULT_SHARE", "HOLDOUT", "HOLDOUT_REASON", "MAX_SHARE", "hash_point", "holdout_items", "holdout_share",
           "in_holdout", "profile_in_holdout", "set_holdout_share"]
