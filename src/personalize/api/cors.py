"""CORS for the public endpoints: only the site's allowed origins may read answers."""

from __future__ import annotations

from flask import Flask, g, request

PUBLIC_PATHS = ("/api/v1/events", "/api/v1/recommendations")


def init_app(app: Flask) -> None:
    @app.after_request
    def _cors(response):
        if not request.path.startswith(PUBLIC_PATHS):
            return response
        origin = request.headers.get("Origin")
        site = g.get("site")
        if origin and site is not None and (not site.allowed_origins or origin in site.allowed_origins) or origin and request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type, X-Personalize-Key"
            response.headers["Access-Control-Max-Age"] = "86400"
        return response
