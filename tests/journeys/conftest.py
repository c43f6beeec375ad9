"""Fixtures for journeys: a real SMTP server (aiosmtpd) and a webhook receiver on loopback,
a shop whose customers gave consent, and a clock the tests move by hand."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from personalize.models import utcnow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Mailbox:
    """What the SMTP server received: one parsed message per DATA, with its envelope."""

    messages: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refuse: set = field(default_factory=set)  # recipients answered 550

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.original_content, policy=policy.default)
        with self.lock:
            self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "message": msg})
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list:
        return [m["message"] for m in self.messages if address in m["to"]]


@pytest.fixture
def smtp_server():
    """A real SMTP server on loopback; ``.mailbox`` holds what it received."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    controller.mailbox = mailbox
    yield controller
    controller.stop()


@dataclass
class Receiver:
    """A webhook receiver: records every delivery (headers and body), answers from ``answers`` first."""

    url: str = ""
    deliveries: list = field(default_factory=list)
    answers: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ, start_response):
        request = Request(environ)
        body = request.get_data()
        with self.lock:
            self.deliveries.append({"headers": dict(request.headers), "body": body, "json": json.loads(body or b"null")})
            status = self.answers.pop(0) if self.answers else 200
        return Response("{}", status, content_type="application/json")(environ, start_response)

    def keys(self) -> list[str]:
        return [d["headers"].get("Idempotency-Key") for d in self.deliveries]


@pytest.fixture
def receiver():
    rec = Receiver()
    server = make_server("127.0.0.1", 0, rec, threaded=True)
    rec.url = f"http://127.0.0.1:{server.server_port}/hook"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


class Clock:
    """The real now moved ahead by what the test ``advance``-d so far."""

    def __init__(self):
        from datetime import timedelta

        self.offset = timedelta(0)

    @property
    def now(self):
        return utcnow() + self.offset

    def advance(self, **delta):
        from datetime import timedelta

        self.offset += timedelta(**delta)
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def inline(app):
    app.config["JOURNEY_INBOX"] = "inline"
    return app
