"""Serves ``static/widget.js``, the one file a shop embeds."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from flask import Blueprint, Response, request

bp = Blueprint("widget", __name__)


def widget_path() -> Path:
    """The script: inside the installed package, or at the top of a source checkout."""
    packaged = resources.files("personalize") / "static" / "widget.js"
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "static" / "widget.js"


@bp.get("/static/widget.js")
def widget_js():
    path = widget_path()
    body = path.read_bytes()
    response = Response(body, mimetype="text/javascript")
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.add_etag()
    return response.make_conditional(request)
