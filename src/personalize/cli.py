"""The ``personalize`` command line."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from . import __version__


def _app():
    from .app import create_app
    from .config import ConfigError

    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


def _site_or_default(ref: str | None, create: bool = False):
    """The site named by ``ref``, or the only site, or (``create``) a new "My shop"."""
    from .sites import create_site, list_sites, resolve_site

    if ref:
        site = resolve_site(ref)
        if site is None:
            raise click.ClickException(f"no site {ref!r}; `personalize sites` lists them (by id, name or public key)")
        return site
    sites = list_sites()
    if len(sites) == 1:
        return sites[0]
    if not sites:
        if not create:
            raise click.ClickException("there is no site yet; create one with `personalize create-site NAME`")
        site, secret = create_site("My shop")
        click.echo(f"Created site 'My shop' (public key {site.public_key}, secret key {secret} — keep it safe)", err=True)
        return site
    names = ", ".join(s.name for s in sites)
    raise click.ClickException(f"there are several sites ({names}); choose one with --site")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="personalize")
def cli():
    """personalize: a self-hosted personalization server for online shops.

    Settings come from PERSONALIZE_* environment variables and
    instance/personalize.toml; see docs/deployment.md.
    """


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", type=int, help="Web server processes (default: the WORKERS setting, 2).")
@click.option("--threads", type=int, help="Threads per process (default: the THREADS setting, 8).")
def serve(host: str, port: int, workers: int | None, threads: int | None):
    """Run the server under gunicorn with several worker processes."""
    from .serve import serve as run_server

    app = _app()  # the configuration is checked and the schema migrated before any worker starts
    workers, threads = workers or app.config["WORKERS"], threads or app.config["THREADS"]
    from .db import maintenance_warnings

    with app.app_context():
        for warning in maintenance_warnings():
            click.echo(f"warning: {warning}", err=True)
    click.echo(f"personalize {__version__} on http://{host}:{port}/  (admin: http://{host}:{port}/admin), {workers} processes × {threads} threads")
    run_server(app, host, port, workers, threads)


@cli.command()
@click.option("--concurrency", type=int, default=1, show_default=True, help="Jobs this worker runs at once (1: in the worker process itself).")
@click.option("--beat", is_flag=True, help="Also run the scheduler (due connector syncs, webhooks); on exactly one worker.")
def worker(concurrency: int, beat: bool):
    """Run jobs from the broker (the BROKER_URL setting) until stopped."""
    app = _app()
    if not app.config.get("BROKER_URL"):
        raise click.ClickException("no broker configured: set PERSONALIZE_BROKER_URL (without one, jobs run inside `personalize serve`)")
    from .queue import run_worker

    run_worker(app, concurrency, beat)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to listen on.")
@click.option("--visitors", default=3000, show_default=True, type=int, help="How many simulated visitors' histories to create.")
@click.option("--no-serve", is_flag=True, help="Build the demo and exit without serving it.")
def demo(host: str, port: int, visitors: int, no_serve: bool):
    """Create a demo shop with a catalogue and visitors' histories, train, and serve it."""
    from .demo.setup import build_demo
    from .demo.views import bp as demo_bp

    app = _app()
    base = f"http://{host}:{port}"
    app.config.setdefault("PUBLIC_URL", base)
    if not app.config.get("PUBLIC_URL"):
        app.config["PUBLIC_URL"] = base
    started = time.perf_counter()
    bars: dict[str, object] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = _progress_bar(f"  {stage}", max(total, 1))
            bar.__enter__()
        bar.update(done - bar.pos)
        if done >= total:
            bar.__exit__(None, None, None)

    click.echo("Building the demo shop…", err=True)
    info = build_demo(app, n_visitors=visitors, progress=progress, origin=base)
    app.config["DEMO_SITE_ID"] = info["site_id"]
    app.config["DEMO_PUBLIC_KEY"] = info["public_key"]
    app.register_blueprint(demo_bp)
    click.echo(f"Ready in {time.perf_counter() - started:.1f} s: {info['products']} products, {info['events']:,} events.", err=True)
    click.echo("")
    click.echo(f"  Demo shop:   {base}/")
    click.echo(f"  Admin:       {base}/admin   (email {info['admin_email']}, password {info['admin_password']})")
    click.echo(f"  Dashboard:   {base}/admin/sites/{info['site_id']}/dashboard   (two weeks of simulated traffic, 20 % holdout)")
    click.echo(f"  Journeys:    {base}/admin/sites/{info['site_id']}/journeys   (three live journeys, a week of history; emails are recorded, not sent)")
    click.echo(f"  Public key:  {info['public_key']}")
    if info.get("secret_key"):
        click.echo(f"  Secret key:  {info['secret_key']}  (shown once)")
    click.echo("")
    if no_serve:
        return
    from .journeys.clock import start_clock

    start_clock(app)  # the demo's journeys go on while it runs
    from werkzeug.serving import run_simple

    run_simple(host, port, app, threaded=True, use_reloader=False)


@cli.command("create-site")
@click.argument("name")
@click.option("--origin", "origins", multiple=True, help="An allowed origin, e.g. https://shop.example (repeatable).")
def create_site_command(name: str, origins: tuple[str, ...]):
    """Create a site and print its public and secret keys."""
    from .sites import SiteError, create_site

    app = _app()
    with app.app_context():
        try:
            site, secret = create_site(name, origins)
        except SiteError as exc:
            raise click.ClickException(f"{exc.field}: {exc}") from None
        click.echo(f"site {site.id}: {site.name}")
        click.echo(f"public key: {site.public_key}")
        click.echo(f"secret key: {secret}   (shown once; store it safely)")


@cli.command("sites")
def sites_command():
    """List sites with their public keys and allowed origins."""
    from .sites import list_sites

    app = _app()
    with app.app_context():
        rows = list_sites()
        if not rows:
            click.echo("No sites yet; `personalize create-site NAME` makes one.")
        for s in rows:
            click.echo(f"{s.id}\t{s.name}\t{s.public_key}\t{' '.join(s.allowed_origins or []) or '(any origin)'}")


def _progress_bar(label: str, total: int):
    return click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True, show_eta=True)


class Counter:
    """A running count on stderr for work whose total is unknown up front."""

    def __init__(self, label: str):
        self.label, self.done, self.started, self.shown = label, 0, time.perf_counter(), 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.shown >= 0.5:
            self.shown = now
            end = "\r" if sys.stderr.isatty() else "\n"
            click.echo(f"  {self.label}: {self.done:,} ({now - self.started:.0f} s){end}", nl=False, err=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        click.echo(f"  {self.label}: {self.done:,} ({time.perf_counter() - self.started:.1f} s)", err=True)


@cli.command("import-products")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--site", "site_ref", help="Site id, name or public key (default: the only site).")
def import_products(file: Path, site_ref: str | None):
    """Load or update products from a CSV (columns: id, title, url, image, price, currency, category, description, in_stock)."""
    from .catalog import upsert_products
    from .importers import ImportFileError, read_products_csv

    app = _app()
    with app.app_context():
        site = _site_or_default(site_ref, create=True)
        try:
            records = list(read_products_csv(file))
        except ImportFileError as exc:
            raise click.ClickException(f"{exc} — nothing was imported") from None
        result = None
        with _progress_bar("products", len(records)) as bar:
            for start in range(0, len(records), 1000):
                r = upsert_products(site.id, records[start : start + 1000])
                result = r if result is None else _add(result, r)
                bar.update(len(records[start : start + 1000]))
        if result is None:
            click.echo("The file has no products.")
            return
        from .db import refresh_statistics
        from .models import Product

        refresh_statistics(Product)
        click.echo(f"{site.name}: {result.inserted} new, {result.updated} updated, {result.unchanged} unchanged products.")


def _add(a, b):
    a.inserted += b.inserted
    a.updated += b.updated
    a.unchanged += b.unchanged
    return a


@cli.command("import-orders")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--site", "site_ref", help="Site id, name or public key (default: the only site, or a new one).")
def import_orders_command(file: Path, site_ref: str | None):
    """Load an order history CSV (UCI Online Retail columns; .csv or .csv.gz) as customers, products and orders.

    Re-running it skips orders already imported. A file error stops at the line
    it names; the orders before it stay imported.
    """
    from .importers import ImportFileError, read_uci_orders
    from .profiles import import_orders

    app = _app()
    with app.app_context():
        site = _site_or_default(site_ref, create=True)
        started = time.perf_counter()
        try:
            with Counter("orders") as bar:
                result = import_orders(site.id, read_uci_orders(file), progress=bar.update)
        except ImportFileError as exc:
            raise click.ClickException(f"{exc} — orders before that line were imported; fix it and run again") from None
        took = time.perf_counter() - started
        click.echo(
            f"{site.name}: {result.orders:,} orders ({result.lines:,} lines) imported, {result.duplicates:,} already there; "
            f"{result.customers:,} customers, {result.new_products:,} new products; {took:.1f} s."
        )


@cli.command()
@click.option("--site", "site_ref", help="Site id, name or public key (default: every site).")
def train(site_ref: str | None):
    """Train the recommendation model; running servers pick it up without a restart."""
    from .recommend.service import train_site
    from .sites import list_sites, resolve_site

    app = _app()
    with app.app_context():
        if site_ref:
            site = resolve_site(site_ref)
            if site is None:
                raise click.ClickException(f"no site {site_ref!r}; `personalize sites` lists them")
            sites = [site]
        else:
            sites = list_sites()
            if not sites:
                raise click.ClickException("there is no site yet; import data first (`personalize import-orders FILE`)")
        for site in sites:
            started = time.perf_counter()
            summary = train_site(site.id, progress=lambda stage, name=site.name: click.echo(f"  {name}: {stage}", err=True))
            click.echo(
                f"{site.name}: model {summary['version']} on {summary['n_interactions']:,} interactions, "
                f"{summary['n_users']:,} people, {summary['n_items']:,} products; "
                f"fit {summary['fit_seconds']:.1f} s, total {time.perf_counter() - started:.1f} s."
            )


@cli.command()
def plugins():
    """List loaded plugins, the hooks each implements, and plugins that failed to load."""
    app = _app()
    registry = app.extensions["personalize.plugins"]
    for p in registry.describe():
        version = f" {p['version']}" if p["version"] else ""
        click.echo(f"{p['name']}{version}  ({p['source']})")
        click.echo(f"    hooks: {', '.join(p['hooks']) or '(none)'}")
    for err in registry.errors:
        click.echo(f"FAILED {err.name}  ({err.source}): {err.error}", err=True)


@cli.group()
def db():
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade():
    """Create or upgrade the database schema to the newest version."""
    from .app import create_app
    from .db import current_revision, upgrade

    app = create_app({"AUTO_MIGRATE": False})
    upgrade(app)
    click.echo(f"schema at revision {current_revision(app)}")


def _register_extra_commands() -> None:
    try:
        from .recommend.cli import make_evaluate_command
    except ImportError:
        return

    def load_site(ref: str):
        from .recommend.service import load_site_data

        app = _app()
        with app.app_context():
            site = _site_or_default(ref)
            log, items, _users = load_site_data(site.id)
            return log, items

    cli.add_command(make_evaluate_command(load_site), "evaluate")


_register_extra_commands()

from .segments.cli import scores_command, segments_group  # noqa: E402

cli.add_command(scores_command)
cli.add_command(segments_group)

from .journeys.cli import journeys_group  # noqa: E402

cli.add_command(journeys_group)


def _register_sync_commands() -> None:
    from .sync.cli import register

    register(cli, _app, _site_or_default)


_register_sync_commands()

from .insights.cli import register as _register_insight_commands  # noqa: E402

_register_insight_commands(cli, _app, _site_or_default)


def main() -> None:
    # plugins may add commands; loading them needs no database
    from .config import instance_path, load_settings
    from .plugins import load_plugins

    try:
        settings = load_settings(instance_path())
        registry = load_plugins(settings.get("PLUGINS_DIR"), settings.get("LOAD_PLUGINS"))
        registry.hook.register_commands(cli=cli)
    except Exception as exc:  # a broken plugin must not take the CLI down
        click.echo(f"warning: plugin commands not loaded: {exc}", err=True)
    cli(prog_name="personalize")
