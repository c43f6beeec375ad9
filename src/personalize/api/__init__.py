"""The JSON API, versioned under ``/api/v1``."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# the modules register their routes on bp
from . import (  # noqa: E402,F401
    errors,
    events,
    guards,
    journeys,
    openapi,
    products,
    profiles,
    rank,
    recommendations,
    rules,
    segments,
    site,
    webhooks,
)
