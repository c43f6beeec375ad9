"""Template filters for numbers people read: money, percentages, ages.

They format whatever they are given: the values come from data a shop, a plugin or a
visitor's browser sent (an event's ``revenue`` may be text), and a page must show it,
not fail. A value that is not what the filter formats is shown as it is (Jinja escapes it).
"""

from __future__ import annotations

import math
from datetime import datetime

from flask import Flask

from ..models import utcnow


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def money(value: object, currency: object = "") -> str:
    if value is None or value == "":
        return "–"
    amount = _finite(value)
    if amount is None:
        return str(value)
    return f"{amount:,.2f} {currency if isinstance(currency, str) else ''}".strip()


def percent(value: object, digits: int = 1, signed: bool = False) -> str:
    share = _finite(value)
    if share is None:
        return "–" if value is None else str(value)
    return f"{share * 100:{'+' if signed else ''}.{digits}f} %"


def points(value: object, digits: int = 1, signed: bool = True) -> str:
    """A difference of two rates in percentage points: 0.012 is "+1.2 pp" (a rate going from 10 % to
    11.2 %), never "+1.2 %", which would read as a relative change."""
    share = _finite(value)
    if share is None:
        return "–" if value is None else str(value)
    return f"{share * 100:{'+' if signed else ''}.{digits}f} pp"


def ago(when: object) -> str:
    if when is None:
        return "never"
    if not isinstance(when, datetime):
        return str(when)
    seconds = int((utcnow() - when).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def when(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") + " UTC"
    return str(value) if value else "–"


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("HeadlessChrome/", "Headless Chrome"),
             ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Windows", "Windows"), ("Mac OS X", "macOS"),
            ("CrOS", "ChromeOS"), ("Linux", "Linux"))


def browser(user_agent: str | None) -> str:
    """"Firefox on Windows" from a User-Agent header; the header itself when it names no known browser."""
    text = (user_agent or "").strip()
    if not text:
        return "unknown browser"
    name = next((label for mark, label in _BROWSERS if mark in text), None)
    system = next((label for mark, label in _SYSTEMS if mark in text), None)
    if name is None:
        return text[:60]
    return f"{name} on {system}" if system else name


def register_filters(app: Flask) -> None:
    from .labels import connector_kind, entry_source, event_label, step_outcome, strategy_label

    app.jinja_env.filters.update(event_label=event_label, strategy_label=strategy_label, entry_source=entry_source, step_outcome=step_outcome, connector_kind=connector_kind, money=money, percent=percent, points=points, ago=ago, when=when, browser=browser)


def sentence(message: object) -> str:
    """An error message as a sentence: first letter up, a full stop (the rest untouched)."""
    text = str(message).strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
