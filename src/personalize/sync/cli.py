"""Command-line faces of the sync engine: ``connectors``, ``connect``, ``connections``,
``sync``, ``sync-log`` and ``new-connector``.

:func:`register` adds them to the top-level group; the application factory and the
site resolver are handed in, so this module does not import the CLI module.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def _parse_pairs(pairs: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=option)
        value = value.strip()
        if value.startswith("@env:"):
            name = value[5:]
            if name not in os.environ:
                raise click.BadParameter(f"environment variable {name} is not set", param_hint=option)
            value = os.environ[name]
        out[key.strip()] = value
    return out


def register(cli: click.Group, make_app: Callable[[], Any], resolve_site: Callable[[str | None], Any]) -> None:
    """Add the sync commands to ``cli``."""

    @cli.command("connectors")
    def connectors_command():
        """List the installed connectors: kind, API version, streams and push targets."""
        from .connections import connector_catalog

        app = make_app()
        with app.app_context():
            catalog = connector_catalog()
            for name, cls in sorted(catalog.classes.items()):
                click.echo(f"{name}  ({cls.kind}, {cls.title or name} {cls.version}, API {cls.api_version or '-'})")
                click.echo(f"    streams: {', '.join(s.name for s in cls.streams) or '(none)'}")
                click.echo(f"    push:    {', '.join(t.name for t in cls.push_targets) or '(none)'}")
                click.echo(f"    settings: {', '.join(s.name + (' (secret)' if s.secret else '') for s in cls.settings) or '(none)'}")
                if cls.allowed_hosts:
                    click.echo(f"    hosts:   {', '.join(cls.allowed_hosts)}")
            for error in catalog.errors:
                click.echo(f"REFUSED {error}", err=True)

    @cli.command("connect")
    @click.argument("site")
    @click.argument("connector")
    @click.option("--name", help="Name of the connection (default: the connector's name).")
    @click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE", help="A setting; VALUE may be @env:VAR to read a secret from the environment.")
    @click.option("--map", "maps", multiple=True, metavar="REMOTE=ATTRIBUTE", help="Map a remote field to a profile attribute (empty ATTRIBUTE drops it).")
    @click.option("--schedule", type=click.IntRange(1, None), help="Sync every N minutes while `personalize serve` runs.")
    @click.option("--push-target", help="Push segment changes to this target of the connector (e.g. tags); '' stops pushing.")
    @click.option("--push-segment", "push_segments", multiple=True, help="Push only this segment (repeatable; default: all).")
    @click.option("--disable", is_flag=True, help="Keep the connection but stop syncing it.")
    def connect_command(site, connector, name, pairs, maps, schedule, push_target, push_segments, disable):
        """Connect SITE to a CONNECTOR (or change the connection's settings).

        Secret settings not given with --set are asked for without echo.
        """
        from .connections import (
            ConnectionSettingsError,
            cleared_secrets_notice,
            connector_class,
            get_connection,
            public_settings,
            save_connection,
            site_files_root,
            uses_files,
        )

        app = make_app()
        with app.app_context():
            s = resolve_site(site)
            values: dict[str, Any] = _parse_pairs(pairs, "--set")
            mapping = {k: (v or None) for k, v in _parse_pairs(maps, "--map").items()} if maps else None
            try:
                cls = connector_class(connector)
                existing = get_connection(s.id, (name or connector).lower())
                for field in cls.settings:
                    if field.secret and field.required and field.name not in values and existing is None:
                        if not sys.stdin.isatty():
                            raise ConnectionSettingsError(field.name, f"is required; pass --set {field.name}=@env:VARIABLE")
                        values[field.name] = click.prompt(field.label, hide_input=True)
                conn = save_connection(s.id, connector, values, name=name, mapping=mapping, schedule_minutes=schedule, enabled=not disable,
                                       push_target=push_target, push_segments=list(push_segments) if push_segments else None)
            except ConnectionSettingsError as exc:
                raise click.ClickException(str(exc)) from None
            click.echo(f"{s.name}: connection {conn.name!r} ({conn.connector}) saved")
            for key, value in public_settings(conn).items():
                click.echo(f"    {key} = {value}")
            notice = cleared_secrets_notice(conn)
            if notice:
                click.echo(f"    {notice} (--set NAME=@env:VARIABLE)", err=True)
            if uses_files(cls):
                root = site_files_root(s.id)
                click.echo(f"    files folder of this site: {root}")
                for field in cls.settings:
                    if field.type == "path":
                        where = root.joinpath(*Path(str((conn.settings or {}).get(field.name) or field.default or ".")).parts)
                        click.echo(f"    {field.name}: put the files in {where} (paths are relative to the site's files folder; FILES_ROOT moves it)")
            if conn.schedule_minutes:
                click.echo(f"    syncs every {conn.schedule_minutes} min while `personalize serve` runs")
            if conn.push_target:
                which = ", ".join(conn.push_segments or []) or "every segment"
                click.echo(f"    pushes {which} to {conn.push_target}")

    @cli.command("connections")
    @click.argument("site", required=False)
    def connections_command(site):
        """List a site's connections with their last sync."""
        from .connections import list_connections, public_settings
        from .engine import run_log

        app = make_app()
        with app.app_context():
            s = resolve_site(site)
            conns = list_connections(s.id)
            if not conns:
                click.echo(f"{s.name} has no connections; add one with `personalize connect`.")
            for conn in conns:
                last = run_log(s.id, conn.name, limit=1)
                state = f"last sync {last[0]['status']} {last[0]['started_at']:%Y-%m-%d %H:%M}" if last else "never synced"
                every = f", every {conn.schedule_minutes} min" if conn.schedule_minutes else ""
                click.echo(f"{conn.name}  ({conn.connector}{every}{'' if conn.enabled else ', disabled'}; {state})")
                click.echo("    " + ", ".join(f"{k}={v}" for k, v in public_settings(conn).items()))

    @cli.command("sync")
    @click.argument("site")
    @click.argument("connection")
    @click.option("--stream", "streams", multiple=True, help="Only this stream (repeatable).")
    @click.option("--full", is_flag=True, help="Read everything again instead of resuming from the stored cursors.")
    @click.option("--json", "as_json", is_flag=True, help="Print the run log entry as JSON.")
    def sync_command(site, connection, streams, full, as_json):
        """Pull CONNECTION's streams into SITE's profiles now, in the foreground."""
        from . import engine

        app = make_app()
        with app.app_context():
            s = resolve_site(site)
            started = time.perf_counter()
            shown: dict[str, int] = {}

            def progress(stream: str, count: int) -> None:
                if shown.get(stream) != count:
                    shown[stream] = count
                    click.echo(f"  {stream}: {count:,} records ({time.perf_counter() - started:.0f} s)", err=True)

            try:
                summary = engine.run_sync(s.id, connection, streams=streams or None, trigger="cli", full=full, progress=progress)
            except engine.SyncError as exc:
                raise click.ClickException(str(exc)) from None
            except KeyError as exc:  # an unknown stream: the message names the ones there are
                raise click.ClickException(exc.args[0]) from None
            _print_summary(summary, as_json)
            from .connections import get_connection
            from .recommendations import positions_for, push_recommendations

            conn = get_connection(s.id, connection)
            if conn is not None and positions_for(conn) > 0 and summary["status"] != "failed":
                pushed = push_recommendations(s.id, connection, trigger="cli")
                click.echo(f"recommendations: {pushed['status']}: {pushed['message']}", err=True)
            if summary["status"] == "failed":
                sys.exit(1)

    @cli.command("sync-log")
    @click.argument("site")
    @click.argument("connection", required=False)
    @click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000))
    def sync_log_command(site, connection, limit):
        """Show the newest runs (pulls and pushes) of a site's connections."""
        from .engine import run_log

        app = make_app()
        with app.app_context():
            s = resolve_site(site)
            for entry in run_log(s.id, connection, limit):
                took = f"{entry['seconds']:.1f} s" if entry["seconds"] is not None else "running"
                click.echo(
                    f"#{entry['run_id']} {entry['started_at']:%Y-%m-%d %H:%M:%S} {entry['connection']} {entry['kind']} "
                    f"{entry['status']}: in {entry['records_in']}, out {entry['records_out']}, skipped {entry['skipped']} ({took})"
                )
                if entry["status"] != "succeeded":
                    click.echo(f"    {entry['message']}")

    @cli.command("new-connector")
    @click.argument("name")
    @click.option("--directory", type=click.Path(file_okay=False, path_type=Path), help="Where to create it (default: ./personalize-NAME).")
    def new_connector_command(name, directory):
        """Create a connector package NAME with a passing test, ready for `pip install -e`."""
        from .scaffold import ScaffoldError, scaffold

        try:
            root = scaffold(name, directory)
        except ScaffoldError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"Created {root}")
        click.echo(f"Next: pip install -e '{root}' && python -m pytest {root}")


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary, default=str, indent=2))
        return
    click.echo(
        f"{summary['status']}: {summary['records_in']:,} records read, {summary['records_out']:,} stored, "
        f"{summary['skipped']:,} skipped in {summary['seconds']:.1f} s"
    )
    for stream, count in summary["streams"].items():
        click.echo(f"  {stream}: {count['status']}, in {count['in']}, stored {count['stored']}, skipped {count['skipped']}"
                   + (f" — {count['error']}" if count.get("error") else ""))
    for line in summary["errors"][:10]:
        click.echo(f"  ! {line}", err=True)
