"""Logs: the format, the request id on every line of a request and in its answer, the access log, redaction."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from personalize.app import create_app
from personalize.config import ConfigError
from personalize.logs import configure, new_request_id, redact, request_id_from
from personalize.testing import app_config

CHATTY_PLUGIN = '''
import logging

from flask import Blueprint
from personalize import hookimpl

log = logging.getLogger("chatty_plugin")
bp = Blueprint("chatty", __name__)


@bp.get("/-/chatty")
def chatty():
    log.info("first line")
    logging.getLogger("personalize.somewhere").warning("second line")
    return {"ok": True}


@hookimpl
def register_blueprints():
    return [bp]
'''


@pytest.fixture
def log_to():
    """``log_to(fmt, level)``: the root logger configured as `serve` does it, into a string; restored afterwards."""
    root = logging.getLogger()
    saved_level = root.level
    stream = io.StringIO()

    def start(fmt: str = "text", level: str = "DEBUG") -> io.StringIO:
        configure({"LOG_LEVEL": level, "LOG_FORMAT": fmt}, stream)
        return stream

    yield start
    for handler in list(root.handlers):
        if getattr(handler, "_personalize", False):
            root.removeHandler(handler)
    root.setLevel(saved_level)
    logging.getLogger("alembic").setLevel(logging.NOTSET)
    logging.captureWarnings(False)


def _app(tmp_path, **extra):
    plugins = tmp_path / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "chatty.py").write_text(CHATTY_PLUGIN)
    return create_app(app_config(tmp_path, f"sqlite:///{tmp_path}/p.db", PLUGINS_DIR=str(plugins), **extra))


def _json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]  # every line is one object, or this fails


def test_every_line_of_a_request_carries_its_id_and_the_answer_echoes_it(tmp_path, log_to):
    app = _app(tmp_path, ACCESS_LOG=True)
    stream = log_to("json")
    response = app.test_client().get("/-/chatty", headers={"X-Request-ID": "lb-7f3a9c"})
    assert response.headers["X-Request-ID"] == "lb-7f3a9c"
    lines = [line for line in _json_lines(stream) if line["request_id"] == "lb-7f3a9c"]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("chatty_plugin", "first line"),
        ("personalize.somewhere", "second line"),
        ("personalize.access", "GET /-/chatty 200 " + lines[2]["message"].split(" 200 ")[1]),
    ]
    assert {line["level"] for line in lines} == {"INFO", "WARNING"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]) for line in lines)

    other = app.test_client().get("/-/chatty")  # no id sent: one is made, a new one per request
    made = other.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert made != app.test_client().get("/-/chatty").headers["X-Request-ID"]
    assert [line["message"] for line in _json_lines(stream) if line["request_id"] == made][:2] == ["first line", "second line"]


@pytest.mark.parametrize("sent", ["", "has space", "x" * 129, "-starts-with-a-dash", "line\nbreak", "sk_" + "a" * 40, "pk_live1234567890", "ünïcode"])
def test_an_insane_request_id_is_replaced(tmp_path, sent):
    assert request_id_from(sent) != sent
    assert re.fullmatch(r"[0-9a-f]{32}", request_id_from(sent))


@pytest.mark.parametrize("sent", ["7f3a9c12-4b5e-4f60-9a1b-2c3d4e5f6a7b", "Root=1-5e1b4151-5ac6c58f", "abc123", "a" * 128])
def test_a_sane_request_id_is_kept(sent):
    assert request_id_from(sent) == sent


def test_the_access_log_is_off_by_default_and_never_holds_the_query(tmp_path, log_to):
    quiet = _app(tmp_path)
    stream = log_to("json")
    quiet.test_client().get("/api/v1/health")
    assert not [line for line in _json_lines(stream) if line["logger"] == "personalize.access"]

    app = _app(tmp_path / "on", ACCESS_LOG=True)
    app.test_client().get("/api/v1/recommendations?visitor=v-42&email=someone%40example.com&slot=home")
    app.test_client().get("/no/such/page")
    access = [line for line in _json_lines(stream) if line["logger"] == "personalize.access"]
    assert [(a["method"], a["path"], a["route"], a["status"]) for a in access] == [
        ("GET", "/api/v1/recommendations", "/api/v1/recommendations", 401),
        ("GET", "/no/such/page", None, 404),
    ]
    assert "v-42" not in stream.getvalue() and "someone" not in stream.getvalue()
    assert all(a["duration_ms"] >= 0 and a["bytes"] > 0 and "client" not in a for a in access)


def test_the_access_log_names_the_client_only_where_addresses_are_stored(tmp_path, log_to):
    app = _app(tmp_path, ACCESS_LOG=True, STORE_IP_ADDRESSES=True)
    stream = log_to("json")
    app.test_client().get("/api/v1/health", environ_base={"REMOTE_ADDR": "203.0.113.77"})
    [line] = [line for line in _json_lines(stream) if line["logger"] == "personalize.access"]
    assert line["client"] == "203.0.113.0"  # IP_ADDRESS_TRUNCATE, as for stored profiles


def test_text_lines_cannot_be_forged_by_a_path(tmp_path, log_to):
    app = _app(tmp_path, ACCESS_LOG=True)
    stream = log_to("text")
    logging.getLogger("personalize.test").warning("a value with\na line break")
    app.test_client().get("/x%0A2026-01-01T00:00:00.000Z INFO forged")
    lines = stream.getvalue().splitlines()
    records = [line for line in lines if not line.startswith("    ")]
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\d+ \S+ \[[^\]]+\] ", r) for r in records), records
    assert "    a line break" in lines
    assert not any(line.startswith("2026-01-01") for line in lines)


def test_levels_filter_and_bad_settings_are_refused(tmp_path, log_to):
    stream = log_to("text", "WARNING")
    logging.getLogger("personalize.test").info("not shown")
    logging.getLogger("personalize.test").warning("shown")
    assert "not shown" not in stream.getvalue() and "shown" in stream.getvalue()
    with pytest.raises(ConfigError, match="LOG_LEVEL must be one of"):
        configure({"LOG_LEVEL": "LOUD", "LOG_FORMAT": "text"})
    with pytest.raises(ConfigError, match="LOG_FORMAT must be text or json"):
        _app(tmp_path, LOG_FORMAT="xml")


def test_a_job_logs_under_its_own_id(tmp_path, log_to):
    from personalize import jobs

    app = _app(tmp_path)
    stream = log_to("json")
    jobs.register("test_logging_job", lambda: logging.getLogger("personalize.test").info("inside the job"))
    runner = jobs.runner(app)
    runner.submit("test_logging_job")
    runner.wait(10)
    lines = _json_lines(stream)
    [queued] = [line for line in lines if line["message"].startswith("job test_logging_job queued as ")]
    [inside] = [line for line in lines if line["message"] == "inside the job"]
    assert inside["request_id"] == queued["message"].rsplit(" ", 1)[1]
    runner.shutdown()


# -- redaction ---------------------------------------------------------------------------------------

SECRET_TEXTS = [
    ("GET /api/v1/recommendations?key=pk_Zx8d7Qm2LkP0aQ1vBn3sTy&visitor=v1", "pk_Zx8d7Qm2LkP0aQ1vBn3sTy"),
    ("raw query key=pk%5FZx8d7Qm2LkP0aQ1vBn3sTy", "Zx8d7Qm2LkP0aQ1vBn3sTy"),
    ("headers {'Authorization': 'Bearer sk_9f8e7d6c5b4a39281706f5e4d3c2b1a0fedcba98'}", "9f8e7d6c5b4a39281706f5e4d3c2b1a0fedcba98"),
    ("Authorization: Token abcdef123456", "abcdef123456"),
    ("sent Basic YW55c3RyaW5nOmtleS11czIw to the API", "YW55c3RyaW5nOmtleS11czIw"),
    ("Redis at redis://:hunter2hunter2@cache.internal:6379/0 unavailable", "hunter2hunter2"),
    ("postgresql+psycopg://personalize:s3cr3t-pw@db:5432/personalize", "s3cr3t-pw"),
    ('{"email": "a@b.example", "password": "correct horse battery"}', "horse battery"),
    ('{"password": "with \\" quote"}', "quote"),
    ("form {'email': 'a@b.example', 'password': 'pa55word!'}", "pa55word!"),
    ("/admin/setup?token=4E59QxH2J_ruNycw4ziBjgqxLVAJiBFj", "4E59QxH2J_ruNycw4ziBjgqxLVAJiBFj"),
    ("api_key=abcdefghijkl client_secret=zyxwvutsrq access_token=qwertyuiop", "abcdefghijkl"),
    ("X-Shopify-Access-Token: shpat_0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"),
    ("token pat-na1-12345678-90ab-cdef-1234-567890abcdef", "12345678-90ab-cdef-1234-567890abcdef"),
    ("mailchimp 0123456789abcdef0123456789abcdef-us21 refused", "0123456789abcdef0123456789abcdef"),
    ("Cookie: session=eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
    ("encryption_key=fernet-key-value secret_key: flask-secret", "fernet-key-value"),
]


@pytest.mark.parametrize(("text", "secret"), SECRET_TEXTS)
def test_redact_removes_keys_passwords_and_tokens(text, secret):
    out = redact(text)
    assert secret not in out and "[redacted]" in out
    assert redact(out) == out


@pytest.mark.parametrize("text", [
    "GET /api/v1/events 202 3.1 ms 41 B", "admin session ended after 120 minutes", "monkey=1 donkey: 2",
    "http://127.0.0.1:8080/path", "sync of shopify: 120 records stored", "tokens left: none",
    "database schema upgraded from 0006 to 0007", new_request_id(),
])
def test_redact_leaves_ordinary_lines_alone(text):
    assert redact(text) == text
