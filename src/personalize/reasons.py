"""Why an item is recommended, as a code with arguments, so that the widget can say it in the
page's language (widget/widget.js holds the translations; a shop may override any of them).

The engine writes English sentences; this catalogue is the one list of them. :func:`reason_fields`
reads a sentence back into its code and arguments: ``"Often bought with Tea pot"`` is
``("bought_with", {"title": "Tea pot"})``. A sentence not in the catalogue (a plugin's, a rule's
own wording) has the code ``custom``: the widget shows it as it is.
"""

from __future__ import annotations

from typing import Any

#: code -> English sentence; ``{title}`` is the product the reason refers to, ``{every}`` a rhythm.
REASONS: dict[str, str] = {
    "bought": "You bought this before",
    "cart": "You added this to your cart",
    "viewed": "You viewed this recently",
    "bought_with": "Often bought with {title}",
    "cart_with": "Goes with {title} in your cart",
    "viewed_with": "Because you viewed {title}",
    "similar": "Similar to {title}",
    "like_you": "Popular with customers like you",
    "popular": "Popular right now",
    "trending": "Trending this week",
    "rhythm": "You buy this {every}",
}
CUSTOM = "custom"

_FIXED = {text: code for code, text in REASONS.items() if "{" not in text}
_PATTERNS = []
for _code, _text in REASONS.items():
    if "{" in _text:
        _head, _rest = _text.split("{", 1)
        _name, _tail = _rest.split("}", 1)
        _PATTERNS.append((_code, _head, _name, _tail))
_PATTERNS.sort(key=lambda p: -len(p[1]) - len(p[3]))  # the most specific first


def reason_fields(text: str | None) -> dict[str, Any]:
    """``{"reason_code": …, "reason_args": {…}}`` for a reason sentence (code None without a reason)."""
    if not text:
        return {"reason_code": None, "reason_args": {}}
    code = _FIXED.get(text)
    if code:
        return {"reason_code": code, "reason_args": {}}
    for code, head, name, tail in _PATTERNS:
        if text.startswith(head) and text.endswith(tail) and len(text) > len(head) + len(tail):
            return {"reason_code": code, "reason_args": {name: text[len(head) : len(text) - len(tail)]}}
    return {"reason_code": CUSTOM, "reason_args": {}}
