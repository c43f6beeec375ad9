"""Imports every module that defines tables, so the metadata (and Alembic) sees them all.

A package that adds tables adds one import line here.
"""

from . import models  # noqa: F401
from .admin import models as _admin_models  # noqa: F401  (which sites an editor or viewer may see)
from .experiments import models as _experiment_models  # noqa: F401  (A/B/n tests of page slots)
from .journeys import models as _journey_models  # noqa: F401  (journeys, entries, step state, channel settings)
from .recommend import channels as _channel_models  # noqa: F401  (the lists people were shown in email and pushed fields)
from .segments import models as _segment_models  # noqa: F401  (profiles and segments tables)
from .sync import models as _sync_models  # noqa: F401  (connections, sync runs, engagement)
