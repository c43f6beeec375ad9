"""``POST /api/v1/webhooks/<public key>/<connection>`` — deliveries from connected systems.

The connector verifies the delivery (for Shopify, the ``X-Shopify-Hmac-Sha256``
signature made with the app's secret); a verified body is stored in the webhook
inbox and answered with 200 at once. A background job turns it into records, so
no sync work runs inside the request, and a delivery sent twice is stored once.
"""

from __future__ import annotations

from flask import request

from ..connectors import ConnectorError
from ..db import db, insert_ignoring_conflicts
from ..jobs import submit
from ..models import utcnow
from ..sites import site_for_public_key
from ..sync.connections import (
    ConnectionSettingsError,
    connector_class,
    connector_context,
    get_connection,
)
from ..sync.engine import make_http
from ..sync.models import WebhookDelivery
from ..sync.secrets import SecretsUnreadable
from . import bp
from .errors import ApiError

KEPT_HEADERS = ("content-type", "user-agent")
#: headers naming a client address (a proxy's or the sender's): never stored (docs/profiles.md, "IP addresses")
ADDRESS_HEADERS = ("x-forwarded-for", "x-real-ip", "x-client-ip", "x-cluster-client-ip", "x-original-forwarded-for", "x-forwarded")


@bp.post("/webhooks/<key>/<connection>")
def receive_webhook(key: str, connection: str):
    site = site_for_public_key(key) if key.startswith("pk_") else None
    if site is None:
        raise ApiError(404, "not_found", "unknown site key in the webhook address", "key")
    conn = get_connection(site.id, connection)
    if conn is None or not conn.enabled:
        raise ApiError(404, "not_found", f"no enabled connection {connection!r}", "connection")
    body = request.get_data(cache=False)
    headers = {name: value for name, value in request.headers.items()}
    try:
        cls = connector_class(conn.connector)
        connector = cls(connector_context(conn, make_http(cls), utcnow()))
    except (ConnectorError, ConnectionSettingsError, SecretsUnreadable):
        raise ApiError(503, "unavailable", "the connection cannot accept webhooks until its settings are fixed") from None
    if not connector.verify_webhook(headers, body):
        raise ApiError(401, "invalid_signature", "the webhook signature does not match", "signature")
    kept = {k: v for k, v in headers.items()
            if (k.lower().startswith("x-") or k.lower() in KEPT_HEADERS) and k.lower() not in ADDRESS_HEADERS}
    delivery_id = connector.webhook_delivery_id(headers, body)[:200]
    inserted = insert_ignoring_conflicts(WebhookDelivery, [{
        "connection_id": conn.id, "delivery_id": delivery_id, "topic": kept.get("X-Shopify-Topic", "")[:100], "headers": kept,
        "body": body.decode("utf-8", "replace"), "received_at": utcnow(), "processed_at": None, "error": "",
    }], ["connection_id", "delivery_id"], returning=(WebhookDelivery.id,))
    db.session.commit()
    if inserted:
        submit("webhooks", connection_id=conn.id)
    return {"accepted": True, "duplicate": not inserted}, 200
