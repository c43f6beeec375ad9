"""What a plugin imports of the server, besides ``personalize.hookimpl``: the plain records that
cross the plugin boundary (defined in :mod:`personalize.recordtypes`) and the connector contract
(defined in :mod:`personalize.connectors`: the base class and declarations a connector is
written with, the errors it raises, the small helpers every connector needs). Both are the same
objects as where they are defined; connectors use the records, so this face sits above both.

Connectors yield these records and hooks receive them; they carry no ORM state, so a
plugin can build and test them without a database or Flask.
"""

from __future__ import annotations

from .connectors import (
    ENTITIES,
    FIELD_TYPES,
    KINDS,
    RECOMMENDATIONS_SETTING,
    AuthError,
    CheckResult,
    ConfigError,
    Connector,
    ConnectorContext,
    ConnectorError,
    HttpAuthError,
    HttpStatusError,
    JourneyAction,
    PushTarget,
    RetryLater,
    Setting,
    SiteFolder,
    Stream,
    StreamError,
    TransientError,
    csv_cell,
    csv_row,
    hmac_sha256_matches,
    parse_time,
    recommendations_setting,
)
from .recordtypes import (
    EVENT_TYPES,
    ActionResult,
    ActionTarget,
    Checkpoint,
    ContactRecommendations,
    ContactRecord,
    DeletedRecord,
    EngagementRecord,
    Event,
    OrderLine,
    OrderRecord,
    ProductRecord,
    PushResult,
    Recommendation,
    RecommendedItem,
    SegmentChange,
    SkippedRecord,
)

__all__ = [
    # the records
    "ActionResult",
    "ActionTarget",
    "Checkpoint",
    "ContactRecommendations",
    "ContactRecord",
    "DeletedRecord",
    "EVENT_TYPES",
    "EngagementRecord",
    "Event",
    "OrderLine",
    "OrderRecord",
    "ProductRecord",
    "PushResult",
    "Recommendation",
    "RecommendedItem",
    "SegmentChange",
    "SkippedRecord",
    # the connector contract
    "ENTITIES",
    "FIELD_TYPES",
    "KINDS",
    "RECOMMENDATIONS_SETTING",
    "AuthError",
    "CheckResult",
    "ConfigError",
    "Connector",
    "ConnectorContext",
    "ConnectorError",
    "HttpAuthError",
    "HttpStatusError",
    "JourneyAction",
    "PushTarget",
    "RetryLater",
    "Setting",
    "SiteFolder",
    "Stream",
    "StreamError",
    "TransientError",
    "csv_cell",
    "csv_row",
    "hmac_sha256_matches",
    "parse_time",
    "recommendations_setting",
]
