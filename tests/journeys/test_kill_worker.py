"""A journey runner killed with SIGKILL in the middle of a batch loses nothing and repeats nothing.

A real ``personalize journeys run`` process works through 160 people, each with an email (to
a real SMTP server) and then a signed webhook (to a real receiver). When about a fifth of
the emails have arrived its whole process group is killed. A second runner takes the
killed one's claims over once their lease ends and finishes. Then the receivers are
reconciled with the database: every step of every person acted on under its own
idempotency key, and a key received twice only for the one step the kill may have
interrupted between the provider's acceptance and the commit (``pytest -s`` prints the figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter

from sqlalchemy import func, select

from personalize.db import db
from personalize.journeys.models import JourneyEnrollment, JourneyStep
from personalize.journeys.store import live_journeys
from personalize.journeys.triggers import Candidate, enter
from personalize.sites import get_site
from personalize.testing import TEST_OUTBOUND_ALLOWED_HOSTS

from .support import customers, journey, mail_settings

PEOPLE = 160


def start_runner(app, log_path, lease: float) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONALIZE_")}
    env.update({
        "PERSONALIZE_DATABASE_URL": app.config["DATABASE_URL"], "PERSONALIZE_INSTANCE_PATH": app.instance_path,
        "PERSONALIZE_AUTO_MIGRATE": "false", "PERSONALIZE_SECRET_KEY": app.config["SECRET_KEY"], "PERSONALIZE_MODEL_CHECK_SECONDS": "3600",
        "PERSONALIZE_OUTBOUND_ALLOWED_HOSTS": TEST_OUTBOUND_ALLOWED_HOSTS,  # the local SMTP server and receiver
    })
    command = [sys.executable, "-c", "from personalize.cli import main; main()", "journeys", "run", "--batch", "60", "--lease", str(lease)]
    return subprocess.Popen(command, env=env, stdout=log_path.open("a"), stderr=subprocess.STDOUT, start_new_session=True)


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    proc.wait(timeout=30)


def wait_until(predicate, timeout: float, what: str, log_path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} did not happen in {timeout} s; runner log:\n{log_path.read_text()[-3000:]}")


def test_a_runner_killed_mid_batch_leaves_every_step_acted_once(app, trained, smtp_server, receiver, tmp_path):
    app.config["JOURNEY_INBOX"] = "inline"
    slow = smtp_server.mailbox.handle_DATA

    async def handle_data(server, session, envelope):  # a few milliseconds a message, like a real relay
        await asyncio.sleep(0.004)
        return await slow(server, session, envelope)

    smtp_server.mailbox.handle_DATA = handle_data
    site = get_site(trained.id)
    mail_settings(app, site.id, smtp_server)
    people = customers(site, PEOPLE, "k")
    j = journey(site.id, "kill", {"trigger": {"type": "api"}, "control": 0, "steps": [
        {"id": "s1", "type": "email", "subject": "Hello", "html": "<p>Hello {{ contact.email }}</p>", "recommendations": 0},
        {"id": "s2", "type": "webhook", "url": receiver.url},
    ]})
    live = next(x for x in live_journeys(site.id).journeys if x.id == j.id)
    assert len(enter(live, [Candidate(pid, f"api:{pid}", "api") for pid in people])) == PEOPLE
    db.session.remove()
    log = tmp_path / "runner.log"
    lease = 2.0
    first = start_runner(app, log, lease)
    try:
        wait_until(lambda: len(smtp_server.mailbox.messages) >= PEOPLE // 5, 60, "the first emails", log)
    finally:
        kill_group(first)
    at_kill = len(smtp_server.mailbox.messages)
    claimed_at_kill = db.session.scalar(select(func.count()).select_from(JourneyStep).where(JourneyStep.claim.is_not(None)))
    db.session.remove()
    assert at_kill < PEOPLE, "the runner was killed before it finished"
    second = start_runner(app, log, lease)
    try:
        def finished() -> bool:
            done = db.session.scalar(select(func.count()).select_from(JourneyEnrollment).where(JourneyEnrollment.status == "completed"))
            db.session.remove()
            return done == PEOPLE
        wait_until(finished, 120, "every entry completing", log)
    finally:
        kill_group(second, signal.SIGTERM)

    rows = db.session.execute(select(JourneyStep.step_id, JourneyStep.idempotency_key, JourneyStep.state, JourneyStep.outcome, JourneyStep.attempts)).all()
    assert len(rows) == 2 * PEOPLE and {(r.state, r.outcome) for r in rows} == {("done", "acted")}
    expected = {step: {r.idempotency_key for r in rows if r.step_id == step} for step in ("s1", "s2")}
    retried = {r.idempotency_key for r in rows if r.attempts > 1}
    mail = Counter(m["message"]["X-Personalize-Key"] for m in smtp_server.mailbox.messages)
    hooks = Counter(receiver.keys())
    assert set(mail) == expected["s1"], "every email arrived, under its step's key"
    assert set(hooks) == expected["s2"], "every webhook arrived, under its step's key"
    repeated = [k for k, n in (mail + hooks).items() if n > 1]
    assert len(repeated) <= 1, f"only the action in flight at the kill may arrive twice: {repeated}"
    assert set(repeated) <= retried, "and then only as a retry of a claim the dead runner held, under the same key"
    for message in smtp_server.mailbox.messages:
        assert message["message"]["Message-ID"].startswith("<" + message["message"]["X-Personalize-Key"] + "@")
    print(f"\nkill: {PEOPLE} people, {2 * PEOPLE} steps; killed after {at_kill} emails with {claimed_at_kill} steps claimed; "
          f"{len(retried)} steps taken over after the lease; received {sum(mail.values())} emails ({len(mail)} distinct) and "
          f"{sum(hooks.values())} webhooks ({len(hooks)} distinct); repeated under the same key: {len(repeated)}")
