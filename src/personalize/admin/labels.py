"""What the admin calls internal names, in a shop owner's words: event types, connector kinds.

An unknown name (a plugin's, or one added later) is shown as it is, with underscores as spaces.
"""

from __future__ import annotations

EVENT_LABELS = {
    "page_viewed": "Viewed a page",
    "product_viewed": "Viewed a product",
    "product_added": "Added to cart",
    "order_completed": "Bought",
    "rec_impression": "Was shown recommendations",
    "rec_clicked": "Clicked a recommendation",
    "identify": "Signed in or gave an email",
    "purchased": "Bought (a product, by order line)",
}

CONNECTOR_KINDS = {
    "any": "Files (any data)",
    "crm": "CRM",
    "email": "Email marketing",
    "shop": "Shop platform",
}


def event_label(name: object) -> str:
    text = str(name or "")
    return EVENT_LABELS.get(text) or text.replace("_", " ").capitalize()


def connector_kind(name: object) -> str:
    text = str(name or "")
    return CONNECTOR_KINDS.get(text) or text.replace("_", " ").capitalize()
