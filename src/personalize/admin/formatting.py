"""Template filters for numbers people read: money, percentages, ages."""

from __future__ import annotations

from datetime import datetime

from flask import Flask

from ..models import utcnow


def money(value: float | None, currency: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:,.2f} {currency}".strip()


def percent(value: float | None, digits: int = 1, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value * 100:{'+' if signed else ''}.{digits}f} %"


def ago(when: datetime | None) -> str:
    if when is None:
        return "never"
    seconds = int((utcnow() - when).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") + " UTC" if value else "–"


def register_filters(app: Flask) -> None:
    app.jinja_env.filters.update(money=money, percent=percent, ago=ago, when=when)


def sentence(message: object) -> str:
    """An error message as a sentence: first letter up, a full stop (the rest untouched)."""
    text = str(message).strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
