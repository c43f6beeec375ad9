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


#: what a journey step did, for the profile page
STEP_OUTCOMES = {
    "acted": "done", "waited": "waited", "yes": "yes", "no": "no", "received": "it happened", "timed_out": "it did not happen in time",
    "control": "held back (control group)", "skipped_cap": "skipped: contact limit reached", "skipped_consent": "skipped: no consent",
    "skipped_recent": "skipped: contacted recently", "failed": "failed", "exited": "left the journey", "goal": "reached the goal",
    "cancelled": "cancelled",
}


def step_outcome(name: object) -> str:
    text = str(name or "")
    return STEP_OUTCOMES.get(text) or (f"path {text.upper()}" if len(text) == 1 else text.replace("_", " "))


def entry_source(source: object) -> str:
    """How someone entered a journey: "event product_viewed" reads "after “viewed a product”"."""
    text = str(source or "")
    kind, _, rest = text.partition(" ")
    if kind == "event" and rest:
        return f"after “{event_label(rest).lower()}”"
    return text


#: the kinds of recommendation list (the ``strategy`` a list reports)
STRATEGY_LABELS = {
    "personal": "Personal recommendations", "popular": "Best sellers (no history yet)", "holdout": "Holdout: best sellers, for comparison",
    "unknown": "Not reported",
}


def strategy_label(name: object) -> str:
    text = str(name or "")
    return STRATEGY_LABELS.get(text) or text.replace("_", " ").replace("-", " ").capitalize()
