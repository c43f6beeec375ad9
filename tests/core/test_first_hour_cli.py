"""The README's "Your own shop in five minutes", run as a new user would, and what each step
says when it meets a real shop's export (the Online Retail file) or a mistake."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys

from click.testing import CliRunner

from personalize.cli import cli

DATASET = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "datasets", "online-retail", "online_retail_2010_2011.csv.gz")
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def uci_sample(path, lines: int) -> str:
    """The first ``lines`` lines of the Online Retail file (read from the shared folder, never copied into the repository)."""
    with gzip.open(DATASET, "rt", encoding="utf-8") as src, open(path, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i > lines:
                break
            dst.write(line)
    return str(path)


def test_a_uk_shops_orders_give_it_pounds_and_say_what_the_products_lack(runner, tmp_path):
    sample = uci_sample(tmp_path / "orders.csv", lines=2000)
    result = runner.invoke(cli, ["import-orders", sample])
    assert result.exit_code == 0, result.output
    assert "Currency: GBP (most orders come from United Kingdom)" in result.output
    assert "products have no link" in result.output and "personalize import-products" in result.output
    assert "Shopify" in result.output

    from personalize.app import create_app
    from personalize.catalog.currency import catalog_gaps, site_currency
    from personalize.sites import list_sites

    with create_app().app_context():
        site = list_sites()[0]
        assert site_currency(site) == "GBP"
        gaps = catalog_gaps(site.id)
        assert gaps["products"] > 100 and gaps["no_url"] == gaps["products"] == gaps["no_image"]


def test_import_products_with_only_links_and_images_keeps_the_titles(runner, tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_text(HEADER + "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n"
                      "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850,United Kingdom\n")
    assert runner.invoke(cli, ["import-orders", str(orders)]).exit_code == 0
    links = tmp_path / "links.csv"
    links.write_text("id,url,image\n85123A,https://shop.example/p/85123A,https://shop.example/i/85123A.jpg\n"
                     "71053,https://shop.example/p/71053,\n")
    result = runner.invoke(cli, ["import-products", str(links)])
    assert result.exit_code == 0, result.output
    assert "0 new, 2 updated" in result.output and "Kept as they were (not in the file): title" in result.output
    assert "0 of 2 products have no link and 1 no image" in result.output

    from personalize.app import create_app
    from personalize.catalog import products_by_ids
    from personalize.sites import list_sites

    with create_app().app_context():
        products = products_by_ids(list_sites()[0].id, ["85123A", "71053"])
        assert products["85123A"].title == "WHITE HANGING HEART" and products["85123A"].price == 2.55
        assert products["85123A"].url == "https://shop.example/p/85123A" and products["85123A"].image.endswith("85123A.jpg")
        assert products["71053"].title == "WHITE METAL LANTERN" and products["71053"].image == ""

    unknown = tmp_path / "unknown.csv"
    unknown.write_text("id,url\n85123A,https://shop.example/p/x\nNEW1,https://shop.example/p/new\n")
    refused = runner.invoke(cli, ["import-products", str(unknown)])
    assert refused.exit_code != 0
    assert "line 3: product 'NEW1'" in refused.output and "needs a title" in refused.output and "nothing was imported" in refused.output


def _orders_file(path, n: int, bad_at: int | None = None) -> None:
    rows = [HEADER]
    for i in range(1, n + 1):
        quantity = "six" if i == bad_at else "2"
        rows.append(f"{600000 + i},P{i % 50},Product {i % 50},{quantity},2011-01-01 10:00:00,1.5,{13000 + i % 400},United Kingdom\n")
    path.write_text("".join(rows))


def test_a_bad_line_keeps_the_orders_before_it_and_running_again_completes_the_import(runner, tmp_path):
    """Orders are imported in chunks of 2,000: the ones in a chunk not yet stored when the bad line came are stored too."""
    orders = tmp_path / "orders.csv"
    _orders_file(orders, 2600, bad_at=2500)
    failed = runner.invoke(cli, ["import-orders", str(orders)])
    assert failed.exit_code != 0
    assert "line 2501" in failed.output and "Quantity" in failed.output
    assert "2,499 new orders from the lines before it were stored" in failed.output
    assert "run the same command again" in failed.output

    _orders_file(orders, 2600)
    again = runner.invoke(cli, ["import-orders", str(orders)])
    assert again.exit_code == 0, again.output
    assert "101 orders (101 lines) imported, 2,499 already there" in again.output

    from sqlalchemy import func, select

    from personalize.app import create_app
    from personalize.db import db
    from personalize.models import Interaction, Order

    with create_app().app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 2600
        assert db.session.scalar(select(func.count()).select_from(Interaction)) == 2600, "no order's lines twice"


def _clean_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONALIZE_")}
    env["HOME"] = str(tmp_path)
    return env


def test_sites_in_the_wrong_folder_names_the_folder_it_looked_in(tmp_path):
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    out = subprocess.run([sys.executable, "-m", "personalize", "sites"], cwd=elsewhere, env=_clean_env(tmp_path),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"No sites in the instance folder {elsewhere / 'instance'}" in out.stdout
    assert "PERSONALIZE_INSTANCE_PATH" in out.stdout


def test_serve_on_a_busy_port_says_so_at_once(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "personalize", "serve", "--port", str(port)], cwd=tmp_path,
                             env=_clean_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in out.stderr and "--port" in out.stderr
    assert "gunicorn" not in out.stderr.lower() and "Booting worker" not in out.stderr
    assert not (tmp_path / "instance").exists(), "nothing was set up before the check"


def test_the_front_door(client):
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'href="/admin/"' in html and "docs/widget.md" in html and "/api/v1/openapi.json" in html
    assert 'id="first-run"' in html and "personalize create-admin" in html  # no admin account yet
    assert client.get("/no-such-page").status_code == 404
    api = client.get("/api/v1/no-such-endpoint")
    assert api.status_code == 404 and api.json["error"]["code"] == "not_found"


def test_every_new_option_has_help():
    result = CliRunner().invoke(cli, ["import-products", "--help"])
    assert "id,url,image" in result.output
