"""personalize: a self-hosted personalization server for online shops.

Plugins import two things from here: :data:`hookimpl` to mark their hook
implementations, and :mod:`personalize.records` for the records they yield.
"""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("personalize")

__all__ = ["hookimpl", "__version__"]
