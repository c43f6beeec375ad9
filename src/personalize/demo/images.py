"""Product pictures for the demo shop, drawn as small SVGs (no downloads, no fonts).

A picture is a soft background in the category's colour, a simple icon for the
category and the product's short name. The same product always gives the same
picture; a little variation (shade, icon tilt) comes from a hash of its id.
"""

from __future__ import annotations

import re
import zlib
from xml.sax.saxutils import escape

from personalize.demo.catalog import CATEGORY_BY_LABEL, CATEGORY_BY_SLUG

# Category slug → (hue, icon). Hues are picked to sit well together on one page.
STYLE: dict[str, tuple[int, str]] = {
    "coffee-tea": (25, "cup"),
    "kitchen": (8, "pan"),
    "running": (200, "shoe"),
    "hiking": (140, "mountain"),
    "yoga": (280, "lotus"),
    "kids": (45, "blocks"),
    "garden": (100, "leaf"),
    "office": (220, "laptop"),
    "pets": (330, "paw"),
    "audio": (250, "headphones"),
}

# Icons drawn in a 200×200 box; ``INK`` is replaced by the stroke/fill colour.
ICONS: dict[str, str] = {
    "cup": (
        '<path d="M40 80h100v55a40 40 0 0 1-40 40h-20a40 40 0 0 1-40-40z" fill="INK"/>'
        '<path d="M140 95h12a20 20 0 0 1 0 40h-14" fill="none" stroke="INK" stroke-width="10"/>'
        '<path d="M70 30q10 12 0 24M95 24q10 14 0 28M120 30q10 12 0 24" fill="none" stroke="INK" '
        'stroke-width="7" stroke-linecap="round" opacity=".6"/>'
    ),
    "pan": (
        '<ellipse cx="85" cy="110" rx="65" ry="45" fill="INK"/>'
        '<rect x="140" y="100" width="55" height="18" rx="9" fill="INK"/>'
        '<ellipse cx="85" cy="104" rx="48" ry="30" fill="#fff" opacity=".25"/>'
    ),
    "shoe": (
        '<path d="M20 130c0-30 10-60 25-70l25 20c15 10 35 12 55 15l40 10c20 5 30 15 30 30v10H20z" fill="INK"/>'
        '<rect x="20" y="145" width="175" height="14" rx="7" fill="INK" opacity=".6"/>'
        '<path d="M60 85l10 10M75 78l10 10M90 72l10 10" stroke="#fff" stroke-width="5" stroke-linecap="round"/>'
    ),
    "mountain": (
        '<path d="M5 170L75 50l40 65 25-35 55 90z" fill="INK"/>'
        '<path d="M75 50l-18 31 10-5 8 10 10-8 6 2z" fill="#fff" opacity=".8"/>'
        '<circle cx="160" cy="40" r="16" fill="INK" opacity=".5"/>'
    ),
    "lotus": (
        '<path d="M100 50c25 25 25 70 0 100c-25-30-25-75 0-100z" fill="INK"/>'
        '<path d="M40 80c35 5 55 40 60 70c-35-5-60-35-60-70zM160 80c-35 5-55 40-60 70c35-5 60-35 60-70z" '
        'fill="INK" opacity=".75"/>'
        '<rect x="30" y="160" width="140" height="10" rx="5" fill="INK" opacity=".5"/>'
    ),
    "blocks": (
        '<rect x="25" y="110" width="60" height="60" rx="8" fill="INK"/>'
        '<rect x="95" y="110" width="60" height="60" rx="8" fill="INK" opacity=".7"/>'
        '<rect x="60" y="45" width="60" height="60" rx="8" fill="INK" opacity=".85"/>'
        '<circle cx="160" cy="50" r="18" fill="INK" opacity=".45"/>'
    ),
    "leaf": (
        '<path d="M40 165C30 90 80 35 170 30c5 90-45 140-130 135z" fill="INK"/>'
        '<path d="M45 160C80 120 110 90 150 55" stroke="#fff" stroke-width="6" fill="none" '
        'stroke-linecap="round" opacity=".7"/>'
    ),
    "laptop": (
        '<rect x="40" y="45" width="120" height="85" rx="8" fill="INK"/>'
        '<rect x="52" y="57" width="96" height="61" rx="3" fill="#fff" opacity=".35"/>'
        '<path d="M15 140h170l-12 20H27z" fill="INK" opacity=".75"/>'
    ),
    "paw": (
        '<ellipse cx="100" cy="130" rx="42" ry="35" fill="INK"/>'
        '<ellipse cx="50" cy="85" rx="15" ry="20" fill="INK"/>'
        '<ellipse cx="80" cy="55" rx="15" ry="21" fill="INK"/>'
        '<ellipse cx="120" cy="55" rx="15" ry="21" fill="INK"/>'
        '<ellipse cx="150" cy="85" rx="15" ry="20" fill="INK"/>'
    ),
    "headphones": (
        '<path d="M40 120V100a60 60 0 0 1 120 0v20" fill="none" stroke="INK" stroke-width="14" stroke-linecap="round"/>'
        '<rect x="25" y="105" width="40" height="65" rx="14" fill="INK"/>'
        '<rect x="135" y="105" width="40" height="65" rx="14" fill="INK"/>'
    ),
    "tag": (
        '<path d="M30 100l70-70h70v70l-70 70z" fill="INK"/>'
        '<circle cx="145" cy="55" r="12" fill="#fff" opacity=".7"/>'
    ),
}

# Characters XML 1.0 does not allow at all; titles from a shop's feed may contain them.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
LINE_CHARS = 20


def _text(value: str) -> str:
    return escape(_INVALID_XML.sub("", value), {'"': "&quot;"})


def _wrap(name: str, width: int = LINE_CHARS, max_lines: int = 2) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in name.split():
        candidate = f"{current} {word}".strip()
        if len(candidate) <= width or not current:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 1].rstrip() + "…"
    return [line if len(line) <= width + 4 else line[: width + 3] + "…" for line in lines]


def _product_id(product) -> str:
    # Accepts a ProductRecord (``id``) or a stored catalogue product (``external_id``).
    return str(getattr(product, "external_id", None) or getattr(product, "id", "") or "")


def _style(category: str) -> tuple[int, str]:
    entry = CATEGORY_BY_LABEL.get(category) or CATEGORY_BY_SLUG.get(category)
    if entry:
        return STYLE[entry.slug]
    return zlib.crc32(category.encode()) % 360, "tag"


def product_svg(product) -> str:
    """A 400×400 SVG picture of a product; well-formed XML whatever the title contains."""
    pid = _product_id(product)
    title = getattr(product, "title", "") or pid
    category = getattr(product, "category", "") or ""
    attributes = getattr(product, "attributes", None) or {}
    short_name = attributes.get("short_name") or title
    brand = attributes.get("brand", "")

    hue, icon = _style(category)
    variant = zlib.crc32(pid.encode())
    hue = (hue + (variant % 3 - 1) * 8) % 360
    tilt = (variant >> 4) % 13 - 6
    ink = f"hsl({hue},45%,42%)"
    background = f"hsl({hue},55%,93%)"
    glow = f"hsl({hue},60%,86%)"

    lines = _wrap(short_name)
    text_y = 318 if len(lines) == 1 else 304
    text = "".join(
        f'<text x="200" y="{text_y + 28 * i}" text-anchor="middle" font-size="24" '
        f'font-weight="600" fill="hsl({hue},35%,25%)">{_text(line)}</text>'
        for i, line in enumerate(lines)
    )
    brand_text = (
        f'<text x="200" y="378" text-anchor="middle" font-size="15" letter-spacing="2" '
        f'fill="hsl({hue},25%,45%)">{_text(brand.upper())}</text>'
        if brand
        else ""
    )
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400" viewBox="0 0 400 400" '
        f'role="img" aria-label="{_text(title)}" '
        'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">'
        f"<title>{_text(title)}</title>"
        f'<rect width="400" height="400" fill="{background}"/>'
        f'<circle cx="200" cy="150" r="120" fill="{glow}"/>'
        f'<g transform="translate(100 50) rotate({tilt} 100 100)">{ICONS[icon].replace("INK", ink)}</g>'
        f"{text}{brand_text}</svg>"
    )
