"""Every API error is JSON of one shape: ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from ..validation import InvalidInput

log = logging.getLogger(__name__)

#: seconds a client is asked to wait before retrying while the database is unavailable
RETRY_AFTER = "5"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.headers = status, code, message, field, headers or {}


def error_response(status: int, code: str, message: str, field: str | None = None, headers: dict | None = None):
    body = {"error": {"code": code, "message": message}}
    if field:
        body["error"]["field"] = field
    response = jsonify(body)
    response.status_code = status
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


def _is_api() -> bool:
    return request.path.startswith("/api/")


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)

    @app.errorhandler(InvalidInput)
    def _invalid(exc: InvalidInput):
        return error_response(400, exc.code, exc.message, exc.field)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if not _is_api():
            from ..landing import is_front_door, landing_page

            if exc.code == 404 and is_front_door():  # nothing claims "/": the server's front door
                return landing_page()
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        message = {
            404: "no such endpoint; see /api/v1 in docs/api.md",
            405: f"{request.method} is not allowed here",
            413: "the request body is too large",
        }.get(exc.code, exc.description or exc.name)
        return error_response(exc.code or 500, code, message, headers=dict(exc.get_headers()) if exc.code == 405 else None)

    def _database_unavailable(exc: Exception):
        # "try again shortly", never a 2xx: whatever this request was storing was rolled back
        log.error("database unavailable: %s", getattr(exc, "orig", None) or exc)
        if not _is_api():
            return "The database is not answering; try again in a few seconds.", 503, {"Retry-After": RETRY_AFTER}
        return error_response(503, "unavailable", "the database is not answering; retry later", headers={"Retry-After": RETRY_AFTER})

    # OperationalError: connection refused or cut, a server restarting, SQLite's "database is locked";
    # PoolTimeout: every pooled connection busy for longer than the pool waits
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(PoolTimeout, _database_unavailable)

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError):
        if exc.connection_invalidated:  # a dropped connection the driver reports as another error class
            return _database_unavailable(exc)
        raise exc  # anything else is a bug, reported as one
