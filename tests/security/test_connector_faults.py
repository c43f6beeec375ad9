"""Connectors under faults: credentials revoked mid-sync, records that change while we page,
a sync process killed between pulling a page and storing it, and providers that quote the
credential they refused. Nothing is lost or doubled, the admin sees a clear error, and no
secret reaches a log, the run log, a command's output, a page, an export or an API answer.

The HubSpot CRM v3 server of tests/connectors plays the provider.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy import func, select

# the strict local HubSpot of the connector tests (CRM v3 search, keyset paging by id)
from connectors.test_hubspot import T0, TOKEN, HubSpot, contact
from personalize.cli import cli
from personalize.db import db
from personalize.models import Identity, Profile
from personalize.profiles.attributes import attributes_of
from personalize.sync import engine
from personalize.sync.connections import save_connection
from personalize.sync.models import SyncRun
from personalize.sync.testing import ProviderServer, recording_sleep

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Revocable(HubSpot):
    """HubSpot whose valid tokens can change mid-run; counts the search pages it served."""

    def __init__(self, people, revoke_after_pages: int | None = None):
        super().__init__(people)
        self.valid = {TOKEN}
        self.revoke_after_pages = revoke_after_pages
        self.pages = 0
        self.before_page = None  # hook(page_number, request) called before a page is answered

    def authorised(self, request):
        return request.headers.get("Authorization", "").removeprefix("Bearer ") in self.valid

    def search(self, request, match):
        if self.revoke_after_pages is not None and self.pages >= self.revoke_after_pages:
            self.valid.discard(TOKEN)
        if not self.authorised(request):
            return self.denied()
        self.pages += 1
        if self.before_page:
            self.before_page(self.pages, request)
        return super().search(request, match)


def hubspot_ids(site_id: int) -> list[str]:
    """Every stored HubSpot id of the site, duplicates included."""
    return list(db.session.scalars(select(Identity.value).where(Identity.site_id == site_id, Identity.kind == "hubspot_id")))


def profiles(site_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(Profile).where(Profile.site_id == site_id))


def reconcile(site_id: int, api: HubSpot) -> int:
    """Every contact of the server is stored exactly once, with its latest first name; returns how many."""
    db.session.expire_all()
    stored = hubspot_ids(site_id)
    assert len(stored) == len(set(stored)), "a contact stored twice"
    assert sorted(stored, key=int) == sorted(api.contacts, key=int), "a contact missing (or one that is not on the server)"
    assert profiles(site_id) == len(api.contacts)
    from personalize.profiles.identity import lookup

    ids = lookup(site_id, "hubspot_id", list(api.contacts))
    for cid, c in api.contacts.items():
        assert attributes_of(ids[cid])["first_name"]["value"] == c["properties"]["firstname"], cid
    return len(stored)


@pytest.fixture
def site(ctx):
    from personalize.sites import create_site

    s, secret = create_site("Faults shop")
    s.secret = secret  # the secret key, shown once at creation: kept here for the API calls
    return s


@pytest.fixture
def small_pages(monkeypatch):
    import personalize_hubspot

    monkeypatch.setattr(personalize_hubspot, "PAGE_SIZE", 10)  # the same paths as pages of 100, with fewer records


def sign_in_owner(client) -> None:
    from personalize.admin.users import create_admin_user

    create_admin_user("owner@faults.example", "a long enough password", "owner")
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/login").get_data(as_text=True)).group(1)
    client.post("/admin/login", data={"email": "owner@faults.example", "password": "a long enough password", "csrf_token": token})


def cli_env(app) -> dict[str, str]:
    return {"PERSONALIZE_DATABASE_URL": app.config["DATABASE_URL"], "PERSONALIZE_INSTANCE_PATH": app.instance_path,
            "PERSONALIZE_AUTO_MIGRATE": "false", "PERSONALIZE_OUTBOUND_ALLOWED_HOSTS": app.config["OUTBOUND_ALLOWED_HOSTS"]}


# ---------------------------------------------------------------- credentials revoked mid-sync


def test_credentials_revoked_mid_sync_stop_clearly_keep_pages_and_resume_without_gap(app, site, small_pages):
    api = Revocable([contact(i, T0 + timedelta(minutes=i)) for i in range(35)], revoke_after_pages=2)
    with api.server:
        save_connection(site.id, "hubspot", {"access_token": TOKEN, "api_url": api.server.url})
        failed = engine.run_sync(site.id, "hubspot", sleep=recording_sleep())
        assert failed["status"] == "failed"
        assert failed["message"].startswith("credentials refused:") and "401" in failed["message"]
        assert failed["streams"]["contacts"]["status"] == "failed"
        # The two pages read before the token was revoked are kept, and the cursor stands right after them.
        assert failed["records_out"] == 20 and len(hubspot_ids(site.id)) == 20
        state = engine.load_state(failed_conn_id(site.id), "contacts")
        assert state["last_id"] == 119 and state["until"] == failed["cursor"]["contacts"]["until"]

        # The admin sees it on the connections page and in `personalize sync-log`.
        client = app.test_client()
        sign_in_owner(client)
        page = client.get(f"/admin/sites/{site.id}/connectors").get_data(as_text=True)
        assert "credentials refused" in page and "failed" in page
        log = CliRunner().invoke(cli, ["sync-log", str(site.id), "hubspot"], env=cli_env(app))
        assert log.exit_code == 0, log.output
        assert " hubspot pull failed: in 20, out 20" in log.output and "credentials refused" in log.output

        # New credentials: the resumed run reads only what is left.
        api.valid = {"pat-eu1-rotated-0001"}
        api.revoke_after_pages = None
        save_connection(site.id, "hubspot", {"access_token": "pat-eu1-rotated-0001"})
        resumed = engine.run_sync(site.id, "hubspot", sleep=recording_sleep())
        assert resumed["status"] == "succeeded", resumed
        assert resumed["records_in"] == 15
        assert reconcile(site.id, api) == 35
    api.server.verify()


def failed_conn_id(site_id: int) -> int:
    from personalize.sync.connections import get_connection

    return get_connection(site_id, "hubspot").id


# ---------------------------------------------------------------- a fault on page 2, then a resume

SEARCH = "/crm/v3/objects/contacts/search"
PAGE_FAULTS = {
    # name: (fault() arguments, does the run recover by itself?)
    "error-in-200": ({"status": 200, "body": {"status": "error", "message": "internal error", "category": "INTERNAL"}}, False),
    "not-json": ({"status": 200, "body": "<html><body>Maintenance</body></html>"}, False),
    "5xx-past-retries": ({"status": 502, "body": {"message": "Bad gateway"}, "times": 5}, False),
    "timeout": ({"status": 200, "delay": 1.5, "times": 3}, False),
    "connection-dropped": ({"drop": True, "times": 3}, False),
    "429-then-fine": ({"status": 429, "body": {"message": "You have reached your secondly limit."}, "headers": {"Retry-After": "2"}}, True),
}


@pytest.mark.parametrize("fault", list(PAGE_FAULTS))
def test_a_fault_on_a_later_page_keeps_the_cursor_and_the_next_run_fills_the_rest(app, site, small_pages, fault):
    options, recovers = PAGE_FAULTS[fault]
    api = Revocable([contact(i, T0 + timedelta(minutes=i)) for i in range(35)])
    api.before_page = lambda page, request: page == 1 and api.server.fault("POST", SEARCH, **options)
    sleep = recording_sleep()
    with api.server:
        save_connection(site.id, "hubspot", {"access_token": TOKEN, "api_url": api.server.url})
        first = engine.run_sync(site.id, "hubspot", sleep=sleep, http_options={"max_retries": 2, "timeout": (2.0, 0.5)})
        if recovers:
            assert first["status"] == "succeeded" and 2.0 in sleep.calls
        else:
            # the contacts stream failed (the run as a whole is "partial" when the archived list was read)
            assert first["status"] in ("failed", "partial") and first["streams"]["contacts"]["status"] == "failed", first
            assert first["records_out"] == 10 and len(hubspot_ids(site.id)) == 10
            assert engine.load_state(failed_conn_id(site.id), "contacts")["last_id"] == 109, "the cursor stays after page 1"
            resumed = engine.run_sync(site.id, "hubspot", sleep=sleep)
            assert resumed["status"] == "succeeded" and resumed["records_in"] == 25
        assert reconcile(site.id, api) == 35


# ---------------------------------------------------------------- records changing while we page


def test_records_changed_or_inserted_while_paging_end_up_once_with_their_latest_values(app, site, small_pages):
    api = Revocable([contact(i, T0 + timedelta(minutes=i)) for i in range(35)])

    def change_the_data(page, request):
        if page != 2:
            return
        until = int(next(f["value"] for f in request.get_json()["filterGroups"][0]["filters"] if f["operator"] == "LTE"))
        later = int(time.time() * 1000) + 1000
        # an already-read record changes: its update is after this run's window
        edit(api.contacts["105"], "Changed105", later)
        # a not-yet-read record changes: it leaves this window (moves to a later one)
        edit(api.contacts["125"], "Moved125", later)
        # a record inserted before the cursor, stamped a minute before the window closed
        new = contact(-5, T0)
        edit(new, "Inserted95", until - 60_000)
        api.contacts[new["id"]] = new
        # and one inserted after the cursor, after the window
        newer = contact(40, T0)
        edit(newer, "Inserted140", later)
        api.contacts[newer["id"]] = newer

    api.before_page = change_the_data
    with api.server:
        save_connection(site.id, "hubspot", {"access_token": TOKEN, "api_url": api.server.url})
        first = engine.run_sync(site.id, "hubspot", sleep=recording_sleep())
        assert first["status"] == "succeeded", first
        assert first["records_in"] == 34, "125 moved out of the window, 95 went in behind the cursor"
        time.sleep(1.2)  # the next run's window must reach past the changes (stamped up to a second ahead)
        second = engine.run_sync(site.id, "hubspot", sleep=recording_sleep())
        assert second["status"] == "succeeded", second
        assert reconcile(site.id, api) == 37
    api.server.verify()


def edit(c: dict, first_name: str, when_ms: int) -> None:
    when = f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(when_ms / 1000))}.{when_ms % 1000:03d}Z"
    c["properties"]["firstname"] = first_name
    c["lastmodified_ms"] = when_ms
    c["updatedAt"] = c["properties"]["lastmodifieddate"] = when


# ---------------------------------------------------------------- killed between pulling and storing


def write_lock(url: str):
    """Take the database's write lock from outside the app (readers still read); return a release function."""
    engine_ = sa.create_engine(url, poolclass=sa.pool.NullPool)
    raw = engine_.raw_connection()
    cur = raw.cursor()
    if url.startswith("sqlite"):
        raw.isolation_level = None
        cur.execute("BEGIN IMMEDIATE")
    else:
        cur.execute("SET lock_timeout = '20s'")
        cur.execute("LOCK TABLE profiles, identities IN EXCLUSIVE MODE")

    def release():
        raw.rollback()
        raw.close()
        engine_.dispose()

    return release


def test_a_sync_killed_between_pulling_and_storing_resumes_with_no_duplicate_and_no_gap(app, site):
    """`personalize sync` in its own process reads pages of 100; while it holds page 3 and waits to
    store it, it is killed with SIGKILL. The next run resumes from page 2's checkpoint."""
    api = Revocable([contact(i, T0 + timedelta(seconds=i)) for i in range(350)])
    third_asked, lock_taken, third_answered = threading.Event(), threading.Event(), threading.Event()

    def hold_page_three(page, request):
        if page == 3:
            third_asked.set()
            lock_taken.wait(30)

    api.before_page = hold_page_three
    real_search = api.server.routes[1].handler

    def search(request, match):
        answer = real_search(request, match)
        if api.pages == 3:
            third_answered.set()
        return answer

    api.server.routes[1].handler = search
    url = app.config["DATABASE_URL"]
    with api.server:
        save_connection(site.id, "hubspot", {"access_token": TOKEN, "api_url": api.server.url})
        proc = subprocess.Popen([sys.executable, "-m", "personalize", "sync", str(site.id), "hubspot"], cwd=ROOT,
                                env={**os.environ, **cli_env(app)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        release = None
        try:
            assert third_asked.wait(90), "the sync process never asked for page 3"
            release = write_lock(url)
            lock_taken.set()
            assert third_answered.wait(30)
            time.sleep(1.0)  # it parses the page and blocks on its first write
            assert proc.poll() is None, proc.stdout.read().decode()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
        finally:
            lock_taken.set()
            if release:
                release()
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(30)
        assert proc.returncode == -signal.SIGKILL

        db.session.expire_all()
        assert len(hubspot_ids(site.id)) == 200, "pages 1 and 2 stored at their checkpoints, page 3 not"
        dead = db.session.scalars(select(SyncRun).where(SyncRun.site_id == site.id)).one()
        assert dead.status == "running"

        # Right away, the dead run still looks alive: a second run is refused, clearly.
        with pytest.raises(engine.AlreadyRunning, match="already syncing"):
            engine.run_sync(site.id, "hubspot", sleep=recording_sleep())
        # Once its heartbeat is stale (as after STALE_AFTER), the next run takes over and resumes.
        dead.heartbeat_at -= engine.STALE_AFTER + timedelta(minutes=1)
        db.session.commit()
        resumed = engine.run_sync(site.id, "hubspot", sleep=recording_sleep())
        assert resumed["status"] == "succeeded", resumed
        assert resumed["records_in"] == 150
        db.session.refresh(dead)
        assert dead.status == "failed" and "interrupted" in dead.message
        assert reconcile(site.id, api) == 350


# ---------------------------------------------------------------- secrets never appear


HUB_SECRET = "pat-eu1-CANARY-hubspot-7f3c9e2a51b8"
SHOP_SECRET = "shpat_CANARY_shopify_0c4d8e1f92ab"
HOOK_SECRET = "whsec_CANARY_webhook_5e6f7a8b9c0d"
MC_SECRET = "CANARYmailchimp3b2a1f0e9d8c7b6a-us20"
# the values themselves, and the Basic credentials Mailchimp's key travels in
SECRETS = [HUB_SECRET, SHOP_SECRET, HOOK_SECRET, MC_SECRET, MC_SECRET.removesuffix("-us20"),
           base64.b64encode(f"personalize:{MC_SECRET}".encode()).decode()]

FAULTS = ["401", "403", "400", "500", "429", "not-json", "error-in-200", "timeout", "dropped"]


class Tattletale:
    """A provider that answers every request with the chosen fault, quoting the credentials it got."""

    def __init__(self):
        self.mode = "401"
        self.quoted = 0
        self.server = ProviderServer()
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            self.server.on(method, "/.*", self.answer, required=False)

    def credentials(self, request) -> str:
        got = [request.headers.get("Authorization", ""), request.headers.get("X-Shopify-Access-Token", "")]
        if got[0].startswith("Basic "):
            got.append(base64.b64decode(got[0][6:]).decode())
        return " ".join(g for g in got if g) + " " + request.full_path

    def answer(self, request, match):
        said = f"credentials {self.credentials(request)} are not valid here"
        self.quoted += 1
        mode = self.mode
        if mode == "timeout":
            time.sleep(1.5)
            return {"said": said}
        if mode == "dropped":
            raise ConnectionAbortedError("dropped on purpose")
        if mode == "not-json":
            return 200, f"<html><body>{said}</body></html>", {"Content-Type": "text/html"}
        if mode == "error-in-200":
            return 200, {"errors": [{"message": said, "extensions": {"code": "ACCESS_DENIED"}}], "status": 401, "detail": said}
        status = int(mode)
        return status, {"status": "error", "message": said, "detail": said, "title": said, "errors": [{"message": said}]}


def dump_tables() -> str:
    """Every row of every table, as text."""
    out = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(table.select()).all():
            out.append(repr(tuple(row)))
    return "\n".join(out)


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def test_no_secret_reaches_logs_run_log_cli_pages_exports_or_api_answers(app, site, caplog):
    from personalize.profiles import ingest_events
    from personalize.records import SegmentChange
    from personalize.sync.push import push_changes

    caplog.set_level(logging.DEBUG)
    provider = Tattletale()
    with provider.server:
        url = provider.server.url
        connections = {
            "hubspot": ({"access_token": HUB_SECRET, "api_url": url}, "property"),
            "shopify": ({"shop": "canary-shop", "access_token": SHOP_SECRET, "webhook_secret": HOOK_SECRET, "api_url": url}, "tags"),
            "mailchimp": ({"api_key": MC_SECRET, "list_id": "a1b2c3", "api_url": url}, "tags"),
        }
        for name, (settings, _target) in connections.items():
            save_connection(site.id, name, settings)
        ingest_events(site, [{"id": "e1", "type": "identify", "visitor": "v1", "ts": int(time.time() * 1000), "email": "ann@example.com"}])
        person = db.session.scalar(select(Profile.id).where(Profile.site_id == site.id))

        client = app.test_client()
        sign_in_owner(client)
        token = lambda: re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/").get_data(as_text=True)).group(1)  # noqa: E731
        seen: list[str] = []
        options = {"max_retries": 1, "timeout": (2.0, 0.5), "max_wait": 2.0}
        faults = 0
        for mode in FAULTS:
            provider.mode = mode
            for name, (_settings, target) in connections.items():
                summary = engine.run_sync(site.id, name, sleep=recording_sleep(), http_options=options)
                assert summary["status"] == "failed", (mode, name, summary)
                pushed = push_changes(site.id, name, target, [SegmentChange("Canaries", person, True)],
                                      sleep=recording_sleep(), http_options=options)
                assert pushed["status"] == "failed", (mode, name, pushed)
                seen += [json.dumps(summary, default=str), json.dumps(pushed, default=str)]
                faults += 2
            if mode in ("401", "500", "not-json"):  # "Test connection" on the admin page: its flash message
                for name in connections:
                    answer = client.post(f"/admin/sites/{site.id}/connectors/{name}/test", data={"csrf_token": token()},
                                         follow_redirects=True)
                    seen.append(answer.get_data(as_text=True))
                    faults += 1
        assert provider.quoted >= faults, "the provider quoted the credentials in its answers"

        # A failing sync from the command line, and what the operator commands print.
        env = cli_env(app)
        provider.mode = "401"
        runner = CliRunner()
        for args in (["sync", str(site.id), "hubspot"], ["sync", str(site.id), "mailchimp", "--json"],
                     ["sync-log", str(site.id), "--limit", "200"], ["connections", str(site.id)]):
            result = runner.invoke(cli, args, env=env)
            assert result.exception is None or isinstance(result.exception, SystemExit), result.output
            seen.append(result.output)
        assert "credentials refused" in seen[-2], "the run log still says what went wrong"

        # The admin pages: list, each connection (form, run log), a form sent back with an error.
        seen.append(client.get(f"/admin/sites/{site.id}/connectors").get_data(as_text=True))
        for name in connections:
            seen.append(client.get(f"/admin/sites/{site.id}/connectors/{name}/settings").get_data(as_text=True))
        refused = client.post(f"/admin/sites/{site.id}/connectors/hubspot/settings", data={
            "csrf_token": token(), "setting_access_token": HUB_SECRET, "setting_api_url": url, "schedule_minutes": "soon", "enabled": "1"})
        assert refused.status_code == 400
        seen.append(refused.get_data(as_text=True))
        seen.append(client.get(f"/admin/sites/{site.id}/profiles/{person}/export").get_data(as_text=True))

        # The API with the site's secret key: the site, the profile and its export.
        api = app.test_client()
        key = {"Authorization": f"Bearer {site.secret}"}
        for path in ("/api/v1/site", f"/api/v1/profiles/{person}", f"/api/v1/profiles/{person}/export"):
            answer = api.get(path, headers=key)
            assert answer.status_code == 200, (path, answer.status_code)
            seen.append(answer.get_data(as_text=True))

    everything = "\n".join(seen) + "\n" + caplog.text + "\n" + dump_tables()
    assert "[hidden]" in everything, "the faults were reported, with the credentials left out"
    assert leaks(everything) == [], [line for line in everything.splitlines() if leaks(line)][:5]
    report_faults(faults)


def report_faults(n: int) -> None:
    print(f"faults injected in the secrets check: {n}")


# ---------------------------------------------------------------- a page that never ends


def test_a_page_that_never_ends_is_stopped_by_the_bounds(app, site, small_pages):
    """A provider (or whoever answers at its address) that sends a page without end: the default
    32 MB bound stops the stream with a message naming the limit; a page that drips stops at the
    deadline and the run is tried again later. The next run with a sane provider fills everything."""
    from werkzeug.wrappers import Response

    from personalize.sync.http import DEFAULT_MAX_BYTES

    api = Revocable([contact(i, T0 + timedelta(minutes=i)) for i in range(35)])

    def endless_page():
        yield b'{"results": ['
        while True:
            yield b'{"id": "1", "properties": {}},' * 2000

    def dripping_page():
        while True:
            time.sleep(0.3)
            yield b" "

    answers = []
    api.before_page = lambda page, request: answers and (_ for _ in ()).throw(_Answer(answers.pop(0)))
    real_search = api.search

    def search(request, match):
        try:
            return real_search(request, match)
        except _Answer as answer:
            return Response(answer.body(), 200, content_type="application/json")

    with api.server:
        for route in api.server.routes:
            if route.handler == real_search:
                route.handler = search
        save_connection(site.id, "hubspot", {"access_token": TOKEN, "api_url": api.server.url})
        answers.append(endless_page)
        started = time.monotonic()
        cut = engine.run_sync(site.id, "hubspot", sleep=recording_sleep())
        assert time.monotonic() - started < 60
        assert cut["streams"]["contacts"]["status"] == "failed", cut
        message = json.dumps(cut, default=str)
        assert f"{DEFAULT_MAX_BYTES:,} bytes" in message and "/crm/v3/objects/contacts/search" in message

        answers.append(dripping_page)
        started = time.monotonic()
        slow = engine.run_sync(site.id, "hubspot", sleep=recording_sleep(), http_options={"deadline": 1.5, "timeout": (2.0, 2.0)})
        assert time.monotonic() - started < 10
        assert "no complete answer within 1.5 s" in json.dumps(slow, default=str), slow

        done = engine.run_sync(site.id, "hubspot", sleep=recording_sleep())
        assert done["status"] == "succeeded", done
        assert reconcile(site.id, api) == 35


class _Answer(Exception):
    def __init__(self, body):
        super().__init__("a hostile answer")
        self.body = body
