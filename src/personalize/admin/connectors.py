"""Connectors of a site: set up a connection from the connector's declared settings (secrets
write-only), test it, queue a sync, schedule, field mapping, and the run log in plain words."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for

from .. import jobs
from ..db import db
from ..models import Site, utcnow
from ..sync.connections import (
    ConnectionSettingsError,
    cleared_secrets_notice,
    connector_catalog,
    delete_connection,
    effective_mapping,
    get_connection,
    hidden_values,
    list_connections,
    public_settings,
    save_connection,
    site_files_root,
    uses_files,
)
from ..sync.engine import build_connector, check_message, make_http, run_log
from ..sync.secrets import redact
from ..validation import whole_number
from . import SITE_TABS, bp
from .access import can_edit, denied, found, site_page
from .formatting import sentence

SITE_TABS.append({"endpoint": "admin.connectors", "label": "Connectors", "order": 1})

# a "test connection" answers while the admin waits: one try, short timeouts
CHECK_HTTP = {"max_retries": 0, "timeout": (5.0, 15.0), "max_wait": 0.0}


def check_connection(conn) -> tuple[bool, str]:
    """Run the connector's cheap authenticated check once."""
    from ..sync.connections import connector_class

    try:
        cls = connector_class(conn.connector)
        connector = build_connector(conn, utcnow(), make_http(cls, **CHECK_HTTP))
        result = connector.check()
    except Exception as exc:  # every failure is reported to the admin, never a 500
        return False, redact(check_message(exc), hidden_values(conn))
    message = result.message + (f" (API {result.api_version})" if result.api_version else "")
    return result.ok, redact(message, hidden_values(conn))


def _form_settings(cls) -> dict:
    """The settings in the form: secrets left empty keep their stored value."""
    out = {}
    for s in cls.settings:
        if s.type == "boolean":
            out[s.name] = "true" if request.form.get(f"setting_{s.name}") else "false"
            continue
        value = request.form.get(f"setting_{s.name}", "")
        if s.secret and not value.strip():
            continue
        out[s.name] = value
    return out


def _form_mapping(cls, current: dict) -> dict:
    mapping = {}
    for remote in sorted(set(cls.default_mapping) | set(current)):
        if f"map_{remote}" in request.form:
            mapping[remote] = request.form.get(f"map_{remote}", "").strip() or None
    extra_remote = request.form.get("map_new_remote", "").strip()
    if extra_remote:
        mapping[extra_remote] = request.form.get("map_new_attribute", "").strip() or None
    return mapping


@bp.get("/sites/<int:site_id>/connectors")
@site_page()
def connectors(s: Site):
    catalog = connector_catalog()
    conns = list_connections(s.id)
    runs = run_log(s.id, limit=50)
    last: dict[str, dict] = {}
    for entry in runs:
        last.setdefault(entry["connection"], entry)
    return render_template("admin/connectors.html", site=s, catalog=catalog, connections=conns, last=last, runs=runs[:20])


@bp.route("/sites/<int:site_id>/connectors/new/<connector>", methods=["GET", "POST"])
@bp.route("/sites/<int:site_id>/connectors/<name>/settings", methods=["GET", "POST"])
@site_page()
def connection(s: Site, connector: str | None = None, name: str | None = None):
    conn = found(get_connection(s.id, name), "connection") if name else None
    kind = conn.connector if conn else connector
    cls = connector_catalog().classes.get(kind or "")
    if cls is None:
        return render_template("admin/message.html", message=f"No connector {kind!r} is installed."), 404
    error = None
    if request.method == "POST":
        if not can_edit(g.admin):
            return denied()
        new_name = (name or request.form.get("name", "") or cls.name).strip().lower()
        try:
            if not name and get_connection(s.id, new_name) is not None:
                raise ConnectionSettingsError("name", f"{new_name!r} exists already; pick another name")
            minutes = _minutes(request.form.get("schedule_minutes", ""))
            saved = save_connection(
                s.id, cls.name, _form_settings(cls), name=new_name,
                mapping=_form_mapping(cls, (conn.mapping if conn else {}) or {}),
                schedule_minutes=minutes, enabled=bool(request.form.get("enabled")),
                push_target=request.form.get("push_target", "") if cls.push_targets else None,
                push_segments=[k for k in request.form.get("push_segments", "").replace(",", " ").split() if k],
            )
            if minutes is None and saved.schedule_minutes is not None:
                saved.schedule_minutes = None  # an emptied field turns the schedule off
                db.session.commit()
        except ConnectionSettingsError as exc:
            db.session.rollback()
            error = sentence(exc)
        else:
            flash(f"Connection {new_name} saved.", "ok")
            notice = cleared_secrets_notice(saved)
            if notice:
                flash(notice, "error")
            return redirect(url_for("admin.connection", site_id=s.id, name=new_name))
    shown = public_settings(conn) if conn else {}
    mapping = effective_mapping(conn) if conn else dict(cls.default_mapping)
    return render_template(
        "admin/connection.html", site=s, cls=cls, conn=conn, shown=shown, mapping=mapping, error=error,
        runs=run_log(s.id, conn.name, limit=10) if conn else [], form=request.form,
        files_root=site_files_root(s.id) if uses_files(cls) else None,
    ), (400 if error else 200)


def _minutes(raw: str) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    if not whole_number(raw) or whole_number(raw) > 10**6:
        raise ConnectionSettingsError("schedule", "enter a whole number of minutes (at least 1), or leave it empty for no schedule")
    return int(raw)


@bp.post("/sites/<int:site_id>/connectors/<name>/test")
@site_page(edit=True)
def connection_test(s: Site, name: str):
    conn = found(get_connection(s.id, name), "connection")
    ok, message = check_connection(conn)
    flash(("Connection works: " if ok else "") + message, "ok" if ok else "error")
    return redirect(url_for("admin.connection", site_id=s.id, name=name))


@bp.post("/sites/<int:site_id>/connectors/<name>/sync")
@site_page(edit=True)
def connection_sync(s: Site, name: str):
    conn = found(get_connection(s.id, name), "connection")
    if not conn.enabled:
        flash("This connection is switched off; switch it on to sync.", "error")
    else:
        jobs.submit("sync", site_id=s.id, connection=name, trigger="manual", full=bool(request.form.get("full")))
        flash("Sync queued: it runs in the background; its result appears in the run log below.", "ok")
    return redirect(url_for("admin.connection", site_id=s.id, name=name))


@bp.post("/sites/<int:site_id>/connectors/<name>/delete")
@site_page(edit=True)
def connection_delete(s: Site, name: str):
    conn = found(get_connection(s.id, name), "connection")
    delete_connection(conn)
    flash(f"Connection {name} removed; the data it brought in stays.", "ok")
    return redirect(url_for("admin.connectors", site_id=s.id))
