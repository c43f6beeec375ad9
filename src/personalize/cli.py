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


def _where(app) -> str:
    """Where this command looked for its data, in words: the instance folder (and how to choose another)."""
    url = str(app.config.get("DATABASE_URL") or "")
    if url == f"sqlite:///{Path(app.instance_path) / 'personalize.db'}":  # the embedded default
        return (f"the instance folder {app.instance_path} (from the current folder; set PERSONALIZE_INSTANCE_PATH "
                "to use another, e.g. PERSONALIZE_INSTANCE_PATH=/srv/shop/instance)")
    from sqlalchemy.engine import make_url

    return f"the database {make_url(url).render_as_string(hide_password=True)} (PERSONALIZE_DATABASE_URL)"


def _port_free(host: str, port: int) -> None:
    """Stop at once, with what to do, when something listens on ``host:port`` already."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise click.ClickException(f"--host {host!r} is not an address this machine has ({exc.strerror})") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: a closed socket's TIME_WAIT is no obstacle
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise click.ClickException(
                    f"port {port} on {host} is already in use (another personalize, or another program); stop it, "
                    f"or choose another port with --port {port + 1}") from None
            if exc.errno == errno.EACCES:
                raise click.ClickException(f"no permission to listen on port {port}; choose a port above 1023 with --port") from None
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
def _configure_logging() -> None:
    """LOG_LEVEL and LOG_FORMAT for this process, set before anything logs (``serve``, ``worker``)."""
    from .config import ConfigError, instance_path, load_settings
    from .logs import configure

    try:
        configure(load_settings(instance_path()))
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


def _site_or_default(ref: str | None, create: bool = False):
    """The site named by ``ref``, or the only site, or (``create``) a new "My shop"."""
    from .sites import create_site, list_sites

    if ref:
        site = _resolve_site(ref)
        if site is None:
            raise click.ClickException(f"no site {ref!r}; `personalize sites` lists them (by id, name or public key)")
        return site
    sites = list_sites()
    if len(sites) == 1:
        return sites[0]
    if not sites:
        if not create:
            from flask import current_app

            raise click.ClickException(f"there is no site yet in {_where(current_app)}; create one with `personalize create-site NAME`")
        site, secret = create_site("My shop")
        click.echo(f"Created site 'My shop' (public key {site.public_key}, secret key {secret} — keep it safe)", err=True)
        return site
    names = ", ".join(f"{s.id} {s.name}" for s in sites)
    raise click.ClickException(f"there are several sites ({names}); choose one with --site")


def _resolve_site(ref: str):
    """The site named by id, name or public key; a name several sites share is refused, naming their ids."""
    from .sites import SiteError, resolve_site

    try:
        return resolve_site(ref)
    except SiteError as exc:
        raise click.ClickException(str(exc)) from None


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
    import logging

    from .serve import serve as run_server

    _port_free(host, port)  # before anything slow: a busy port is said at once, not by gunicorn's retries
    _configure_logging()  # gunicorn's lines and the workers' take the same format
    app = _app()  # the configuration is checked and the schema migrated before any worker starts
    workers, threads = workers or app.config["WORKERS"], threads or app.config["THREADS"]
    from .db import maintenance_warnings

    with app.app_context():
        for warning in maintenance_warnings():
            logging.getLogger("personalize.serve").warning("%s", warning)
        first_run = _first_run_notice(app, host, port)
    click.echo(f"personalize {__version__} on http://{host}:{port}/  (admin: http://{host}:{port}/admin), {workers} processes × {threads} threads")
    if first_run:
        click.echo(first_run)
    run_server(app, host, port, workers, threads)


def _first_run_notice(app, host: str, port: int) -> str | None:
    """While no admin account exists: where to create the owner (the link holds the setup token)."""
    from sqlalchemy.exc import SQLAlchemyError

    from .admin.first_run import setup_url
    from .admin.users import count_admin_users

    try:
        if count_admin_users() > 0:
            return None
    except SQLAlchemyError as exc:  # no schema yet (AUTO_MIGRATE off): say so rather than fail to start
        return f"warning: cannot read the admin accounts ({getattr(exc, 'orig', None) or exc}); if the database is new, run `personalize db upgrade`"
    wildcard = host in ("0.0.0.0", "::", "")
    base = app.config.get("PUBLIC_URL") or f"http://{'127.0.0.1' if wildcard else host}:{port}"
    where = " (or this server's address instead of 127.0.0.1)" if wildcard and not app.config.get("PUBLIC_URL") else ""
    return (f"First run: create the owner account at {setup_url(base, app.config['SECRET_KEY'])}{where}\n"
            "  The link works until the first account exists; `personalize create-admin EMAIL` does the same on this machine.")


@cli.command()
@click.option("--concurrency", type=int, default=1, show_default=True, help="Jobs this worker runs at once (1: in the worker process itself).")
@click.option("--beat", is_flag=True, help="Also run the scheduler (due connector syncs, webhooks); on exactly one worker.")
def worker(concurrency: int, beat: bool):
    """Run jobs from the broker (the BROKER_URL setting) until stopped."""
    _configure_logging()  # Celery's lines take the same format
    app = _app()
    if not app.config.get("BROKER_URL"):
        raise click.ClickException("no broker configured: set PERSONALIZE_BROKER_URL (without one, jobs run inside `personalize serve`)")
    from .jobs import run_worker

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

    if not no_serve:
        _port_free(host, port)
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
    password = info["admin_password"] or "unknown: demo-admin.txt is gone; `personalize create-admin EMAIL` makes another owner"
    click.echo(f"  Admin:       {base}/admin   (email {info['admin_email']}, password {password})")
    click.echo(f"  Dashboard:   {base}/admin/sites/{info['site_id']}/dashboard   (30 days of simulated traffic, 20 % holdout)")
    click.echo(f"  Journeys:    {base}/admin/sites/{info['site_id']}/journeys   (three live journeys, a week of history; emails are recorded, not sent)")
    click.echo(f"  Public key:  {info['public_key']}")
    if info.get("secret_key"):
        click.echo(f"  Secret key:  {info['secret_key']}  (shown once)")
    click.echo("")
    if no_serve:
        return
    from .jobs import submitter
    from .journeys.clock import start_clock

    start_clock(app, submit=submitter(app))  # the demo's journeys go on while it runs
    from werkzeug.serving import run_simple

    run_simple(host, port, app, threaded=True, use_reloader=False)


@cli.command("create-site")
@click.argument("name")
@click.option("--origin", "origins", multiple=True, help="An allowed origin, e.g. https://shop.example (repeatable).")
@click.option("--allow-duplicate-name", is_flag=True, help="Create the site even if another site has this name.")
def create_site_command(name: str, origins: tuple[str, ...], allow_duplicate_name: bool):
    """Create a site and print its public and secret keys."""
    from .sites import SiteError, clean_site_name, create_site, sites_named

    app = _app()
    with app.app_context():
        try:
            same = sites_named(clean_site_name(name))
            if same and not allow_duplicate_name:
                ids = ", ".join(str(s.id) for s in same)
                raise click.ClickException(
                    f"a site named {name.strip()!r} exists already (id {ids}); choose another name, or pass "
                    "--allow-duplicate-name (commands then need the site's id or public key instead of its name)"
                )
            site, secret = create_site(name, origins)
        except SiteError as exc:
            raise click.ClickException(f"{exc.field}: {exc}") from None
        click.echo(f"site {site.id}: {site.name}")
        click.echo(f"public key: {site.public_key}")
        click.echo(f"secret key: {secret}   (shown once; store it safely)")


@cli.command("create-admin")
@click.argument("email")
@click.option("--role", type=click.Choice(["owner", "editor", "viewer"]), default="owner", show_default=True,
              help="owner: everything; editor: changes the sites given with --site; viewer: reads them.")
@click.option("--site", "site_refs", multiple=True, help="For an editor or viewer: a site they may see (id, name or public key; repeatable).")
def create_admin_command(email: str, role: str, site_refs: tuple[str, ...]):
    """Create an admin account (the first owner, or a colleague); asks for the password."""
    from .admin.access import set_site_access
    from .admin.users import MIN_PASSWORD, AdminUserError, create_admin_user, get_admin_user

    app = _app()
    with app.app_context():
        if get_admin_user(email) is not None:
            raise click.ClickException(f"{email.strip().lower()} has an account already")
        if role == "owner" and site_refs:
            raise click.ClickException("an owner sees every site: --site is for an editor or viewer")
        sites = []
        for ref in site_refs:
            site = _resolve_site(ref)
            if site is None:
                raise click.ClickException(f"no site {ref!r}; `personalize sites` lists them")
            sites.append(site)
        password = click.prompt(f"Password (at least {MIN_PASSWORD} characters)", hide_input=True, confirmation_prompt=True)
        try:
            user = create_admin_user(email, password, role)
        except AdminUserError as exc:
            raise click.ClickException(f"{exc.field}: {exc}") from None
        if sites:
            set_site_access(user, {s.id for s in sites})
        seen = f"; sites: {', '.join(f'{s.id} {s.name}' for s in sites)}" if sites else ""
        click.echo(f"{user.email} can now sign in at /admin as {user.role}{seen}.")


@cli.command("sites")
def sites_command():
    """List sites with their public keys and allowed origins."""
    from .sites import list_sites

    app = _app()
    with app.app_context():
        rows = list_sites()
        if not rows:
            click.echo(f"No sites in {_where(app)}.")
            click.echo("Make one with `personalize create-site NAME`, or run this in the folder you ran it in before.")
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
    """Load or update products from a CSV (columns: id, title, url, image, price, currency, category, description, in_stock).

    Only the columns the file has are changed on products that exist: a file with the
    columns id,url,image adds links and images and keeps every title and price. A new
    product needs a title. Any other column is a product attribute.
    """
    from .catalog import products_by_ids, upsert_products
    from .importers import ImportFileError, product_csv_columns, read_product_lines

    app = _app()
    with app.app_context():
        site = _site_or_default(site_ref, create=True)
        try:
            columns = product_csv_columns(file)
            lines = list(read_product_lines(file))
        except ImportFileError as exc:
            raise click.ClickException(f"{exc} — nothing was imported") from None
        records = [r for _line, r in lines]
        if "title" not in columns:
            known = products_by_ids(site.id, [r.id for r in records])
            new = [(line, r) for line, r in lines if r.id not in known]
            if new:
                line, first = new[0]
                more = f" (and {len(new) - 1:,} more)" if len(new) > 1 else ""
                raise click.ClickException(
                    f"{file}, line {line}: product {first.id!r}{more} is not in the catalogue yet, and a new product needs a "
                    "title; add a title column, or leave new products out — nothing was imported")
        result = None
        with _progress_bar("products", len(records)) as bar:
            for start in range(0, len(records), 1000):
                r = upsert_products(site.id, records[start : start + 1000], columns=columns)
                result = r if result is None else _add(result, r)
                bar.update(len(records[start : start + 1000]))
        if result is None:
            click.echo("The file has no products.")
            return
        from .db import refresh_statistics
        from .models import Product

        refresh_statistics(Product)
        kept = [c for c in ("title", "url", "image", "price", "currency", "category", "description", "in_stock") if c not in columns]
        click.echo(f"{site.name}: {result.inserted} new, {result.updated} updated, {result.unchanged} unchanged products."
                   + (f" Kept as they were (not in the file): {', '.join(kept)}." if kept and result.updated + result.unchanged else ""))
        _after_import(site)


def _after_import(site) -> None:
    """What an import leaves to do: the site's currency, and products the widget cannot show well."""
    from .catalog.currency import catalog_gaps, ensure_site_currency

    code, why, new = ensure_site_currency(site)
    if new:
        click.echo(f"Currency: {code} ({why}); prices without their own currency are shown in it. Change it on the site's admin page.")
    elif not code:
        click.echo("Currency: unknown (neither the orders nor the products name one), so prices are shown without a currency sign; "
                   "set it on the site's admin page.")
    gaps = catalog_gaps(site.id)
    if gaps["no_url"] or gaps["no_image"]:
        click.echo(
            f"{gaps['no_url']:,} of {gaps['products']:,} products have no link and {gaps['no_image']:,} no image: the widget leaves "
            "a product without a link out. Add them with `personalize import-products products.csv` (the columns id,url,image "
            "are enough; titles and prices stay as they are), or connect your Shopify shop (docs/connectors.md)."
        )


def _add(a, b):
    a.inserted += b.inserted
    a.updated += b.updated
    a.unchanged += b.unchanged
    return a


@cli.command("import-orders")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--site", "site_ref", help="Site id, name or public key (default: the only site, or a new one).")
def import_orders_command(file: Path, site_ref: str | None):
    """Load an order history CSV (UCI Online Retail columns, optionally Currency; .csv or .csv.gz) as customers, products and orders.

    Re-running it skips orders already imported (orders are kept by their id). A file
    error stops at the line it names; the orders read before it are stored.
    """
    from .importers import ImportFileError, read_uci_orders
    from .profiles import import_orders
    from .profiles.orders import OrderImportResult

    app = _app()
    with app.app_context():
        site = _site_or_default(site_ref, create=True)
        started = time.perf_counter()
        result = OrderImportResult()
        try:
            with Counter("orders") as bar:
                import_orders(site.id, read_uci_orders(file), progress=bar.update, result=result)
        except ImportFileError as exc:
            there = f" ({result.duplicates:,} more were there already)" if result.duplicates else ""
            raise click.ClickException(
                f"{exc}.\n{result.orders:,} new orders from the lines before it were stored{there}; the order that line belongs to and everything after it were not. "
                "Fix the line and run the same command again: orders already stored are recognised by their order id and skipped."
            ) from None
        took = time.perf_counter() - started
        click.echo(
            f"{site.name}: {result.orders:,} orders ({result.lines:,} lines) imported, {result.duplicates:,} already there; "
            f"{result.customers:,} customers, {result.new_products:,} new products; {took:.1f} s."
        )
        _after_import(site)


@cli.command()
@click.option("--site", "site_ref", help="Site id, name or public key (default: every site).")
def train(site_ref: str | None):
    """Train the recommendation model; running servers pick it up without a restart."""
    from .recommend.service import train_site
    from .sites import list_sites

    app = _app()
    with app.app_context():
        if site_ref:
            site = _resolve_site(site_ref)
            if site is None:
                raise click.ClickException(f"no site {site_ref!r}; `personalize sites` lists them")
            sites = [site]
        else:
            sites = list_sites()
            if not sites:
                raise click.ClickException(f"there is no site yet in {_where(app)}; import data first (`personalize import-orders FILE`)")
        for site in sites:
            started = time.perf_counter()
            summary = train_site(site.id, progress=lambda stage, name=site.name: click.echo(f"  {name}: {stage}", err=True))
            click.echo(
                f"{site.name}: model {summary['version']} on {summary['n_interactions']:,} interactions, "
                f"{summary['n_users']:,} people, {summary['n_items']:,} products; "
                f"fit {summary['fit_seconds']:.1f} s, total {time.perf_counter() - started:.1f} s."
            )
            click.echo(f"  {summary['description']}")


@cli.command()
def plugins():
    """List loaded plugins, the hooks each implements, and plugins that failed to load."""
    app = _app()
    registry = app.extensions["personalize.plugins"]
    plugin_config = app.extensions["personalize.plugin_settings"]
    for p in registry.describe():
        version = f" {p['version']}" if p["version"] else ""
        click.echo(f"{p['name']}{version}  ({p['source']})")
        click.echo(f"    hooks: {', '.join(p['hooks']) or '(none)'}")
        if keys := sorted(plugin_config(p["name"])):  # the names only: values may be secrets
            click.echo(f"    settings: {', '.join(keys)}")
    for name in plugin_config.configured():
        if name not in plugin_config.names:
            click.echo(f"warning: personalize.toml has [plugins.{name}], but no plugin {name!r} is loaded", err=True)
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

from .journeys.cli import register as _register_journey_commands  # noqa: E402
from .segments.cli import register as _register_segment_commands  # noqa: E402

_register_segment_commands(cli, _app, _site_or_default)
_register_journey_commands(cli, _app, _site_or_default)


def _register_sync_commands() -> None:
    from .sync.cli import register

    register(cli, _app, _site_or_default)


_register_sync_commands()

from .insights.cli import register as _register_insight_commands  # noqa: E402

_register_insight_commands(cli, _app, _site_or_default)


def main() -> None:
    # plugins may add commands; loading them needs no database
    from .config import ConfigError, instance_path, load_settings
    from .logs import configure
    from .plugins import load_plugins

    try:  # every command's log lines in the configured format, redacted; all but serve/worker: warnings and up
        settings = load_settings(instance_path())
        level = str(settings.get("LOG_LEVEL") or "INFO").upper()
        configure({**settings, "LOG_LEVEL": "WARNING" if level in ("INFO", "WARNING") else level})
    except ConfigError:
        pass  # the command reports it when it reads the settings
    try:
        settings = load_settings(instance_path())
        registry = load_plugins(settings.get("PLUGINS_DIR"), settings.get("LOAD_PLUGINS"))
        registry.hook.register_commands(cli=cli)
    except Exception as exc:  # a broken plugin must not take the CLI down
        click.echo(f"warning: plugin commands not loaded: {exc}", err=True)
    cli(prog_name="personalize")
