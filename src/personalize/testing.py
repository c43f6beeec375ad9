"""Helpers for tests of personalize and of plugins: a fresh, migrated database per app.

Set ``PERSONALIZE_TEST_DATABASE_URL`` to a PostgreSQL URL to run against it: each
:func:`fresh_database` then gets a schema of its own, dropped afterwards, so tests
never see each other's rows. Without it, each gets a new SQLite file.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

TEST_DATABASE_ENV = "PERSONALIZE_TEST_DATABASE_URL"


@contextmanager
def fresh_database(folder: str | Path, base_url: str | None = None) -> Iterator[str]:
    """Yield the URL of an empty database; it is removed when the block ends."""
    base_url = base_url if base_url is not None else os.environ.get(TEST_DATABASE_ENV, "")
    if not base_url or base_url.startswith("sqlite"):
        yield f"sqlite:///{Path(folder) / ('t' + secrets.token_hex(4) + '.db')}"
        return
    import sqlalchemy as sa

    schema = "t_" + secrets.token_hex(6)
    engine = sa.create_engine(base_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


#: test servers listen on the loopback address, which the outbound policy refuses unless trusted
TEST_OUTBOUND_ALLOWED_HOSTS = "127.0.0.1"


def app_config(folder: str | Path, url: str, **extra) -> dict:
    """The ``create_app`` settings for a test app on ``url`` with its instance in ``folder``.

    ``OUTBOUND_ALLOWED_HOSTS`` trusts 127.0.0.1, where local provider servers listen (only
    that spelling: ``localhost`` stays refused); pass ``OUTBOUND_ALLOWED_HOSTS=""`` to test the
    policy of a server that trusts nothing.
    """
    return {"TESTING": True, "DATABASE_URL": url, "INSTANCE_PATH": str(folder), "AUTO_MIGRATE": True, "MODEL_CHECK_SECONDS": 0.0,
            "OUTBOUND_ALLOWED_HOSTS": TEST_OUTBOUND_ALLOWED_HOSTS, **extra}


@contextmanager
def throwaway_app(prefix: str = "pz-", **extra) -> Iterator:
    """An app on a fresh, migrated database in a new temporary folder; both are removed afterwards."""
    import shutil
    import tempfile

    from .app import create_app
    from .db import db

    folder = tempfile.mkdtemp(prefix=prefix)
    try:
        with fresh_database(folder) as url:
            app = create_app(app_config(folder, url, **extra))
            try:
                yield app
            finally:
                from .refusals import refusals

                refusals(app).close()  # no late write into a database about to go
                with app.app_context():
                    db.engine.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def serve_in_thread(app) -> Iterator:
    """Serve ``app`` over real HTTP on a free loopback port from a thread; the server's ``.url`` is its base URL."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
