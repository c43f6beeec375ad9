"""CORS for the public endpoints: only the site's allowed origins may read answers; anyone may
read why they were refused.

A successful answer (data) carries ``Access-Control-Allow-Origin`` only for an allowed origin.
An error answer (4xx/5xx) carries it for any origin: its body is one of our error messages
("… is not an allowed origin of this site", "unknown or revoked key", a field that is
invalid), made from what the page itself sent, never data of the site. Without it the
browser hides the answer and the page's developer sees only a "CORS error"; with it, the
widget can tell them what is wrong (``console.warn``, once per page).

Refusals of a known site's widget requests are also counted for its admin page
(:mod:`personalize.refusals`).
"""

from __future__ import annotations

from flask import Flask, current_app, g, request

from .auth import SITE_OF_REQUEST

PUBLIC_PATHS = ("/api/v1/events", "/api/v1/recommendations", "/api/v1/rank")


def init_app(app: Flask) -> None:
    @app.after_request
    def _cors(response):
        if not request.path.startswith(PUBLIC_PATHS):
            return response
        origin = request.headers.get("Origin")
        site = g.get("site")
        error = response.status_code >= 400
        if origin and (error or request.method == "OPTIONS" or site is not None and (not site.allowed_origins or origin in site.allowed_origins)):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type, X-Personalize-Key"
            response.headers["Access-Control-Max-Age"] = "86400"
        if error and response.status_code < 500:
            _note_refusal(response, origin)
        return response


def _note_refusal(response, origin: str | None) -> None:
    site_id = request.environ.get(SITE_OF_REQUEST)
    if site_id is None:  # an unknown key: no site to tell (the widget's console says it)
        return
    try:
        error = (response.get_json(silent=True) or {}).get("error") or {}
    except Exception:  # a body that is not ours: nothing to say
        return
    from ..refusals import refusals

    message = str(error.get("message") or "")
    if error.get("field"):
        message = f"{error['field']}: {message}"
    refusals(current_app._get_current_object()).note(site_id, origin, str(error.get("code") or response.status_code), message)
