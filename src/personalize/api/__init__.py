"""The JSON API, versioned under ``/api/v1``."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from . import errors, events, products, profiles, recommendations, segments, site  # noqa: E402,F401  (routes register on bp)  # noqa: E402,F401  (single customer view and segments)
from . import webhooks  # noqa: E402,F401  (connector webhooks)
