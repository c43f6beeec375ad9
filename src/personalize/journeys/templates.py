"""The standard journeys a shop starts from: each a working definition (and the segment it needs).

Every template is a draft until the shop activates it; the emails are plain, readable
HTML the shop rewrites in its own words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .definition import validate_definition

QUIET = {"quiet_start": "21:00", "quiet_end": "08:00", "recent_hours": 0}

_STYLE = "font-family:Arial,Helvetica,sans-serif;font-size:15px;line-height:1.5;color:#1d2330"


def _email(sid: str, subject: str, body: str, recommendations: int = 4) -> dict[str, Any]:
    html = (f'<div style="{_STYLE}">\n<p>Hi {{{{ contact.first_name or "there" }}}},</p>\n{body}\n'
            + ("{{ recommendations_block }}\n" if recommendations else "")
            + '<p>— {{ shop.name }}</p>\n</div>')
    return {"id": sid, "type": "email", "subject": subject, "html": html, "recommendations": recommendations}


@dataclass(frozen=True)
class Template:
    key: str
    name: str
    description: str
    definition: dict[str, Any]
    segments: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> {"name", "rule"} created when missing


TEMPLATES: tuple[Template, ...] = (
    Template(
        "browse-abandonment", "Browse abandonment",
        "Someone looked at a product and did not add anything within two hours: one email with the product and what they may like.",
        {
            "trigger": {"type": "event", "event": "product_viewed"},
            "reentry": {"mode": "cooldown", "days": 7},
            "steps": [
                {"id": "s1", "type": "wait_event", "event": "product_added", "seconds": 2 * 3600,
                 "branches": {"received": [{"id": "s2", "type": "exit"}], "timeout": [_email("s3", "Still thinking it over?",
                    "<p>You had a look at <strong>{{ trigger.product.title or 'one of our products' }}</strong>. "
                    "Here it is again, with a few things people who liked it chose too.</p>")]}},
            ],
            "goal": {"type": "order"}, "goal_days": 7, "control": 10, "limits": {**QUIET, "recent_hours": 24},
        },
    ),
    Template(
        "cart-abandonment", "Cart abandonment",
        "Someone added to the cart and did not order: a reminder after an hour, another the next day. Ordering ends it.",
        {
            "trigger": {"type": "event", "event": "product_added"},
            "reentry": {"mode": "cooldown", "days": 3},
            "steps": [
                {"id": "s1", "type": "wait", "seconds": 3600},
                _email("s2", "You left something in your cart",
                       "<p><strong>{{ trigger.product.title or 'Your pick' }}</strong> is still waiting for you.</p>"
                       '{% if trigger.product %}<p><a href="{{ trigger.product.url }}">Back to it</a></p>{% endif %}', 3),
                {"id": "s3", "type": "wait", "seconds": 86400},
                _email("s4", "Still interested?", "<p>Your cart is saved. If you have a question, just answer this email.</p>", 4),
            ],
            "goal": {"type": "order"}, "goal_days": 7, "control": 10, "limits": QUIET,
        },
    ),
    Template(
        "post-purchase", "Post-purchase cross-sell",
        "Three days after an order: what goes well with it, chosen for the customer.",
        {
            "trigger": {"type": "event", "event": "order_completed"},
            "reentry": {"mode": "cooldown", "days": 14},
            "steps": [
                {"id": "s1", "type": "wait", "seconds": 3 * 86400},
                {"id": "s2", "type": "wait", "until": "10:00"},
                _email("s3", "Goes well with your order", "<p>Thank you for your order. These go well with it:</p>", 4),
            ],
            "goal": {"type": "order"}, "goal_days": 14, "control": 10, "limits": {**QUIET, "recent_hours": 48},
        },
    ),
    Template(
        "win-back", "Win-back of declining high spenders",
        "Customers who spent a lot and are likely to stop buying (attrition score): a personal email, then a second one a week later.",
        {
            "trigger": {"type": "segment_entered", "segment": "declining-high-spenders"},
            "reentry": {"mode": "cooldown", "days": 90},
            "steps": [
                {"id": "s1", "type": "wait", "until": "10:00"},
                _email("s2", "We picked these for you", "<p>It has been a while. We picked a few things with you in mind:</p>", 4),
                {"id": "s3", "type": "wait", "seconds": 7 * 86400},
                {"id": "s4", "type": "split", "shares": {"a": 50, "b": 50}, "branches": {
                    "a": [_email("s5", "A little something for you", "<p>As one of our best customers, here is what is new this week.</p>", 6)],
                    "b": [_email("s6", "Is everything all right?", "<p>We would love to hear from you: just answer this email.</p>", 0)],
                }},
            ],
            "goal": {"type": "order"}, "goal_days": 21, "exit": {"on_goal": True, "on_segment_exit": True},
            "control": 15, "limits": {**QUIET, "recent_hours": 72},
        },
        {"declining-high-spenders": {"name": "Declining high spenders", "rule": {"and": [
            {"field": "scores.m_score", "op": "gte", "value": 4}, {"field": "scores.attrition", "op": "gte", "value": 0.5}]}}},
    ),
    Template(
        "welcome", "Welcome",
        "The first time a visitor tells us who they are: a welcome, and two days later the best sellers unless they ordered.",
        {
            "trigger": {"type": "event", "event": "identify"},
            "reentry": {"mode": "once"},
            "steps": [
                _email("s1", "Welcome to {{ shop.name }}", "<p>Thank you for joining us. A few things to start with:</p>", 4),
                {"id": "s2", "type": "wait", "seconds": 2 * 86400},
                {"id": "s3", "type": "branch", "rule": {"field": "orders.count", "op": "gte", "value": 1},
                 "branches": {"yes": [{"id": "s4", "type": "exit"}],
                              "no": [_email("s5", "What our customers love", "<p>These are the favourites this week:</p>", 6)]}},
            ],
            "goal": {"type": "order"}, "goal_days": 14, "control": 10, "limits": QUIET,
        },
    ),
    Template(
        "lead-nurture", "Lead nurture by stage",
        "Leads from the CRM (lifecycle stage lead or subscriber): an introduction, then content by stage; a lead that becomes "
        "marketing-qualified is marked for sales. Add a HubSpot step to set the lifecycle stage if you connected HubSpot.",
        {
            "trigger": {"type": "segment_entered", "segment": "leads"},
            "reentry": {"mode": "once"},
            "steps": [
                _email("s1", "Getting started with {{ shop.name }}", "<p>Here is how our customers get the most out of us.</p>", 0),
                {"id": "s2", "type": "wait", "seconds": 4 * 86400},
                {"id": "s3", "type": "branch", "rule": {"field": "attributes.lifecycle_stage", "op": "eq", "value": "marketingqualifiedlead"},
                 "branches": {
                     "yes": [{"id": "s4", "type": "set_attribute", "name": "nurture_stage", "value": "sales-ready"}],
                     "no": [_email("s5", "How others use {{ shop.name }}", "<p>Three stories from customers like you.</p>", 3),
                            {"id": "s6", "type": "wait", "seconds": 7 * 86400},
                            _email("s7", "Shall we talk?", "<p>Answer this email and we will find a time.</p>", 0)],
                 }},
            ],
            "goal": {"type": "order"}, "goal_days": 30, "exit": {"on_goal": True, "on_segment_exit": True}, "control": 10, "limits": QUIET,
        },
        {"leads": {"name": "Leads", "rule": {"field": "attributes.lifecycle_stage", "op": "in", "value": ["subscriber", "lead", "marketingqualifiedlead"]}}},
    ),
)


def template(key: str) -> Template | None:
    return next((t for t in TEMPLATES if t.key == key), None)


def create_from_template(site_id: int, key: str, journey_key: str | None = None, name: str | None = None):
    """A draft journey from a template, with the segments it needs created when missing. Commits;
    returns the journey and the keys of the segments it created (their members are to be built)."""
    from ..segments.store import create_segment, get_segment
    from ..validation import InvalidInput
    from .store import create_journey

    found = template(key)
    if found is None:
        raise InvalidInput("template", "is not a journey template")
    created = []
    for seg_key, seg in found.segments.items():
        if get_segment(site_id, seg_key) is None:
            create_segment(site_id, {"key": seg_key, "name": seg["name"], "rule": seg["rule"]})
            created.append(seg_key)
    journey = create_journey(site_id, journey_key or found.key, name or found.name, validate_definition(found.definition), found.description)
    return journey, created
