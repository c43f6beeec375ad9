"""Serves ``static/widget.js``, the one file a shop embeds, and ``static/capture.js``, which the
widget loads beside itself only when its tag asks for data-layer capture (docs/widget.md)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from flask import Blueprint, Response, request

bp = Blueprint("widget", __name__)


def widget_path(name: str = "widget.js") -> Path:
    """A served script (built from ``widget/``): inside the installed package, or at the top of a source checkout."""
    packaged = resources.files("personalize") / "static" / name
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "static" / name


@bp.get("/static/widget.js")
def widget_js():
    return _script("widget.js")


@bp.get("/static/capture.js")
def capture_js():
    return _script("capture.js")


def _script(name: str):
    body = widget_path(name).read_bytes()
    response = Response(body, mimetype="text/javascript")
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.add_etag()
    return response.make_conditional(request)
