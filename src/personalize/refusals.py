"""Why a shop's pages get nothing: the widget requests of each site that the API refused.

A shop owner who pasted the snippet on a page of an origin the site does not allow, or whose
pages send events the API cannot accept, sees nothing in the browser but a console line. The
site's admin page shows this record instead ("12 requests from https://other.example refused:
origin not allowed"), read from the ``refused_requests`` table.

Where it is kept, and why: in the database, because ``personalize serve`` runs several
processes and the admin's live check may be answered by another process than the one that
refused the request (process memory would show each a part), and Redis is optional. A refused
request costs no database write of its own: :func:`note` counts in this process's memory, and
a background thread adds the counts to the table once a second (one upsert per site, origin
and reason), so a flood of refused requests is a flood of dictionary increments, not of
writes. The record is bounded twice: at most :data:`PENDING_MAX` distinct keys wait in a
process (more are dropped until the next flush), and at most :data:`KEEP` rows per site stay
in the table, the most recent ones. An origin is whatever the ``Origin`` header said (cut to
200 characters); it is shown as text.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from flask import Flask
from sqlalchemy import delete, select, update

from .db import db, insert_ignoring_conflicts
from .models import RefusedRequest, utcnow

log = logging.getLogger(__name__)

KEEP = 20  # rows per site: the most recently refused origins and reasons
PENDING_MAX = 1000  # distinct (site, origin, reason) waiting in one process between two flushes
FLUSH_SECONDS = 1.0
NO_ORIGIN = "(no Origin header)"

#: what each refusal code means to a shop owner, and what to do about it
REASONS = {
    "origin_not_allowed": "origin not allowed: add it to the site's allowed origins",
    "rate_limited": "over the rate limit (RATE_LIMIT_PER_SITE)",
}


@dataclass
class _Pending:
    count: int
    message: str
    first_at: datetime
    last_at: datetime


class Refusals:
    """This process's refusals not yet in the table, and the thread that writes them."""

    def __init__(self, app: Flask, flush_seconds: float = FLUSH_SECONDS):
        self.app = app
        self.flush_seconds = flush_seconds
        self._pending: dict[tuple[int, str, str], _Pending] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def close(self) -> None:
        """Stop recording: drop what is pending and wait for the writer (an app being torn down)."""
        with self._lock:
            self._closed = True
            self._pending.clear()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def note(self, site_id: int, origin: str | None, reason: str, message: str) -> None:
        key = (int(site_id), (origin or NO_ORIGIN)[:200], reason[:64])
        now = utcnow()
        with self._lock:
            if self._closed:
                return
            entry = self._pending.get(key)
            if entry is None:
                if len(self._pending) >= PENDING_MAX:
                    return
                self._pending[key] = _Pending(1, message[:300], now, now)
            else:
                entry.count += 1
                entry.message, entry.last_at = message[:300], now
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="personalize-refusals", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        import time

        while True:
            time.sleep(self.flush_seconds)
            with self._lock:
                if not self._pending:
                    self._thread = None  # under the lock: a note() from now on starts a new thread
                    return
            try:
                self.flush()
            except Exception:  # the record is a help, never a reason for a thread to die noisily each second
                log.exception("could not store refused widget requests")

    def flush(self) -> int:
        """Add this process's pending counts to the table now; how many keys were written."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        with self.app.app_context():
            try:
                for (site_id, origin, reason), p in pending.items():
                    insert_ignoring_conflicts(RefusedRequest, [{
                        "site_id": site_id, "origin": origin, "reason": reason, "message": p.message,
                        "count": 0, "first_at": p.first_at, "last_at": p.last_at,
                    }], ["site_id", "origin", "reason"])
                    db.session.execute(
                        update(RefusedRequest)
                        .where(RefusedRequest.site_id == site_id, RefusedRequest.origin == origin, RefusedRequest.reason == reason)
                        .values(count=RefusedRequest.count + p.count, message=p.message, last_at=p.last_at)
                    )
                for site_id in {k[0] for k in pending}:
                    keep = select(RefusedRequest.id).where(RefusedRequest.site_id == site_id).order_by(
                        RefusedRequest.last_at.desc(), RefusedRequest.id.desc()).limit(KEEP)
                    db.session.execute(delete(RefusedRequest).where(
                        RefusedRequest.site_id == site_id, RefusedRequest.id.not_in(keep.scalar_subquery())))
                db.session.commit()
            except Exception:
                db.session.rollback()
                raise
            finally:
                db.session.remove()
        return len(pending)


def refusals(app: Flask) -> Refusals:
    found = app.extensions.get("personalize.refusals")
    if found is None:
        found = app.extensions.setdefault("personalize.refusals", Refusals(app))
    return found


def recent_refusals(site_id: int, limit: int = KEEP) -> list[dict]:
    """The site's refused widget requests, the most recent first: origin, reason, what it means, count, when."""
    rows = db.session.scalars(
        select(RefusedRequest).where(RefusedRequest.site_id == site_id)
        .order_by(RefusedRequest.last_at.desc(), RefusedRequest.id.desc()).limit(limit)
    )
    return [
        {
            "origin": r.origin, "reason": r.reason, "count": int(r.count), "message": r.message,
            "meaning": REASONS.get(r.reason) or r.message, "first_at": r.first_at, "last_at": r.last_at,
        }
        for r in rows
    ]
