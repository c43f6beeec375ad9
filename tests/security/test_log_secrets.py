"""No secret in any log line: real requests carrying keys, passwords and tokens, every line the server writes read back.

The requests go through the whole application (WSGI, the API, the admin, a plugin's
blueprint) with the root logger configured as ``personalize serve`` configures it, at
DEBUG, with the access log on. A careless plugin logs the whole URL, the headers and the
form of each request and fails with the key in its error (a traceback in the log), and
Redis is configured with a password it cannot reach (its warning names the URL). None of
it may reach the log unredacted, in either format.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time

import pytest

from personalize.app import create_app
from personalize.logs import configure
from personalize.testing import app_config

CARELESS_PLUGIN = '''
import logging

from flask import Blueprint, request
from personalize import hookimpl

log = logging.getLogger("careless_plugin")
bp = Blueprint("careless", __name__)


@bp.route("/-/careless", methods=["GET", "POST"])
def careless():
    log.info("url %s headers %s form %s body %s", request.url, dict(request.headers), request.form.to_dict(), request.get_data(as_text=True))
    raise RuntimeError(f"cannot use key {request.args.get('key')} with {request.headers.get('Authorization')}")


@hookimpl
def register_blueprints():
    return [bp]
'''

REDIS_PASSWORD = "redis-pass-7c1e"


@pytest.fixture
def captured():
    root = logging.getLogger()
    level = root.level
    yield
    for handler in list(root.handlers):
        if getattr(handler, "_personalize", False):
            root.removeHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.NOTSET)
    logging.captureWarnings(False)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_key_password_or_token_reaches_the_log(tmp_path, fmt, captured, monkeypatch):
    from functools import partial

    from werkzeug.security import generate_password_hash

    from personalize.admin.first_run import setup_token
    from personalize.sites import create_site

    monkeypatch.setattr("personalize.admin.users.generate_password_hash", partial(generate_password_hash, method="scrypt:1024:8:1"))
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "careless.py").write_text(CARELESS_PLUGIN)
    stream = io.StringIO()
    configure({"LOG_LEVEL": "DEBUG", "LOG_FORMAT": fmt}, stream)
    app = create_app(app_config(
        tmp_path, f"sqlite:///{tmp_path}/p.db", PLUGINS_DIR=str(plugins), ACCESS_LOG=True, PROPAGATE_EXCEPTIONS=False,
        REDIS_URL=f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0",  # nothing listens on port 1: the cache warns, naming the URL
    ))
    with app.app_context():
        site, secret = create_site("Logged shop")
        public = site.public_key
        token = setup_token(app.config["SECRET_KEY"])
    password = "correct horse battery staple"
    client = app.test_client()
    ids = []

    def sent(response):
        ids.append(response.headers["X-Request-ID"])
        return response

    now = int(time.time() * 1000)
    sent(client.post(f"/api/v1/events?key={public}", json={"events": [{"id": "e1", "type": "page_viewed", "visitor": "v1", "ts": now}]}))
    sent(client.post("/api/v1/events", json={"key": public, "events": [{"id": "e2", "type": "page_viewed", "visitor": "v1", "ts": now}]}))
    sent(client.get(f"/api/v1/recommendations?key={public}&visitor=v1"))
    sent(client.get(f"/api/v1/recommendations?key={secret}&visitor=v1"))  # refused: a secret key in a URL
    sent(client.get("/api/v1/site", headers={"Authorization": f"Bearer {secret}"}))
    sent(client.get(f"/api/v1/webhooks/{public}/nothing"))
    sent(client.get(f"/-/careless?key={public}", headers={"Authorization": f"Bearer {secret}", "X-Personalize-Key": public}))
    sent(client.post("/-/careless", data={"email": "owner@shop.example", "password": password, "key": secret}))
    sent(client.get(f"/admin/setup?token={token}"))
    form = client.get(f"/admin/setup?token={token}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    sent(client.post("/admin/setup", data={"token": token, "email": "owner@shop.example", "password": password, "csrf_token": csrf}))
    sent(client.post("/admin/login", data={"email": "owner@shop.example", "password": password + "x", "csrf_token": csrf}))
    sent(client.get("/api/v1/ready"))

    app.extensions["personalize.limits"].close()  # its thread would warn again after the test
    app.extensions["personalize.cache"].close()
    text = stream.getvalue()
    assert "careless_plugin" in text and "RuntimeError" in text, "the plugin's lines and its traceback are in the log"
    assert "personalize.access" in text and all(rid in text for rid in ids), "every request was logged, with its id"
    for value in (public, public[3:], secret, secret[3:], password, token, REDIS_PASSWORD):
        assert value not in text, f"{value[:8]}… is in the log"
    assert text.count("[redacted]") >= 8
    if fmt == "json":
        assert all(isinstance(json.loads(line), dict) for line in text.splitlines())
