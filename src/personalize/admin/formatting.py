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
    app.jinja_env.filters.update(money=money, percent=percent, ago=ago, when=when, browser=browser)


def sentence(message: object) -> str:
    """An error message as a sentence: first letter up, a full stop (the rest untouched)."""
    text = str(message).strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
