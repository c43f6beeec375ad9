"""A recommendation list drawn as a PNG: a grid of product cards (picture, title, price).

Plain Pillow on plain values, no database and no Flask, so it is tested and measured on
its own (bench/bench_email_block.py). The font is the one Pillow ships (no download);
pictures are files already on disk (:func:`personalize.recommend.channels.thumbnail_path`),
never fetched here: a product without one gets a tile with its initials.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

CARD_W, PICTURE_H, TEXT_H, GAP = 200, 200, 64, 12
BACKGROUND, INK, MUTED, BORDER = (255, 255, 255), (28, 32, 40), (84, 90, 102), (226, 229, 234)


@dataclass(frozen=True)
class Card:
    title: str
    price_text: str = ""
    picture: str | None = None  # a local file path


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled font (FreeType builds)
    except TypeError:  # pragma: no cover - a Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


@lru_cache(maxsize=512)
def _picture(path: str, mtime: float) -> Image.Image | None:
    try:
        with Image.open(path) as img:
            img.draft("RGB", (CARD_W, PICTURE_H))  # JPEG: decode at the size needed
            pic = img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    pic.thumbnail((CARD_W, PICTURE_H))
    return pic


def _load(path: str | None) -> Image.Image | None:
    if not path:
        return None
    try:
        mtime = Path(path).stat().st_mtime
    except OSError:
        return None
    return _picture(path, mtime)


def _initials(title: str) -> str:
    words = [w for w in title.split() if w[:1].isalnum()]
    return "".join(w[0] for w in words[:2]).upper() or "?"


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """``text`` cut (with an ellipsis) to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _lines(draw: ImageDraw.ImageDraw, text: str, font, width: int, most: int = 2) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        attempt = f"{line} {word}".strip()
        if draw.textlength(attempt, font=font) <= width or not line:
            line = attempt
        else:
            lines.append(line)
            line = word
        if len(lines) == most:
            break
    if len(lines) < most and line:
        lines.append(line)
    if len(lines) == most and " ".join(lines) != " ".join(words):
        lines[-1] = _fit(draw, lines[-1] + " " + " ".join(words[len(" ".join(lines).split()):]), font, width)
    return [_fit(draw, ln, font, width) for ln in lines]


@lru_cache(maxsize=1024)
def _tile(title: str) -> Image.Image:
    hue = zlib.crc32(title.encode()) % 360
    tile = Image.new("HSV", (CARD_W, PICTURE_H), (int(hue * 255 / 360), 40, 240)).convert("RGB")
    draw = ImageDraw.Draw(tile)
    draw.text((CARD_W / 2, PICTURE_H / 2), _initials(title), font=_font(56), fill=(70, 74, 84), anchor="mm")
    return tile


def draw_cards(cards: list[Card], columns: int = 2) -> bytes:
    """The PNG of ``cards`` in rows of ``columns`` (white background, 200 px wide cards)."""
    columns = max(1, min(columns, len(cards) or 1))
    rows = max(1, -(-len(cards) // columns))
    width = columns * CARD_W + (columns + 1) * GAP
    height = rows * (PICTURE_H + TEXT_H) + (rows + 1) * GAP
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    title_font, price_font = _font(15), _font(14)
    for n, card in enumerate(cards):
        x = GAP + (n % columns) * (CARD_W + GAP)
        y = GAP + (n // columns) * (PICTURE_H + TEXT_H + GAP)
        picture = _load(card.picture) or _tile(card.title)
        canvas.paste(picture, (x + (CARD_W - picture.width) // 2, y + (PICTURE_H - picture.height) // 2))
        draw.rectangle((x - 1, y - 1, x + CARD_W, y + PICTURE_H + TEXT_H), outline=BORDER)
        ty = y + PICTURE_H + 6
        for line in _lines(draw, card.title, title_font, CARD_W - 12):
            draw.text((x + 6, ty), line, font=title_font, fill=INK)
            ty += 19
        if card.price_text:
            draw.text((x + 6, y + PICTURE_H + TEXT_H - 20), _fit(draw, card.price_text, price_font, CARD_W - 12), font=price_font, fill=MUTED)
    out = io.BytesIO()
    canvas.save(out, "PNG", optimize=False, compress_level=6)
    return out.getvalue()
