"""Why an item is recommended, as a code with arguments, so that it can be said in the page's
language: the API words it in German, French or Spanish when the widget sends the page's
``lang`` (:func:`localize`); a shop may override any wording in the widget (``data-text``).

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


#: the same reasons in other languages (``{title}``, ``{every}`` as in :data:`REASONS`), and the list's name
WORDS: dict[str, dict[str, str]] = {
    "de": {"bought": "Schon gekauft", "cart": "Im Warenkorb", "viewed": "Zuletzt angesehen", "bought_with": "Oft gekauft mit {title}",
           "cart_with": "Passt zu {title}", "viewed_with": "Weil Sie {title} ansahen", "similar": "Ähnlich wie {title}",
           "like_you": "Beliebt bei Kunden wie Ihnen", "popular": "Gerade beliebt", "trending": "Im Trend", "rhythm": "Regelmäßig gekauft",
           "list": "Für Sie"},
    "fr": {"bought": "Déjà acheté", "cart": "Dans votre panier", "viewed": "Vu récemment", "bought_with": "Souvent acheté avec {title}",
           "cart_with": "Va avec {title}", "viewed_with": "Vous avez vu {title}", "similar": "Proche de {title}",
           "like_you": "Apprécié de clients comme vous", "popular": "Populaire", "trending": "Tendance", "rhythm": "Acheté régulièrement",
           "list": "Pour vous"},
    "es": {"bought": "Ya comprado", "cart": "En tu carrito", "viewed": "Visto hace poco", "bought_with": "Se compra con {title}",
           "cart_with": "Combina con {title}", "viewed_with": "Porque viste {title}", "similar": "Parecido a {title}",
           "like_you": "Gusta a clientes como tú", "popular": "Popular ahora", "trending": "Tendencia", "rhythm": "Compra habitual",
           "list": "Para ti"},
}
LIST_LABEL = "Recommended for you"


def language(tag: str | None) -> str | None:
    """The language of a page's ``lang`` (``de-AT`` -> ``de``) when its words are known, else None (English)."""
    short = (tag or "")[:2].lower()
    return short if short in WORDS else None


def localize(item: dict[str, Any], lang: str | None) -> dict[str, Any]:
    """``item`` with its ``reason`` in ``lang`` (from its code and arguments); unchanged for English,
    for a reason without a code (``custom``) or for an unknown language."""
    words = WORDS.get(lang or "")
    template = words.get(item.get("reason_code") or "") if words else None
    if not template:
        return item
    args = item.get("reason_args") or {}
    text = template
    for name, value in args.items():
        text = text.replace("{" + name + "}", str(value))
    return {**item, "reason": text}


def list_label(lang: str | None) -> str:
    """The list's accessible name in ``lang``."""
    return WORDS.get(lang or "", {}).get("list", LIST_LABEL)
