"""The command line, run as a user would (a real process for the slow paths)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from personalize.cli import cli

DATASET = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "datasets", "online-retail", "online_retail_2010_2011.csv.gz")


def uci_sample(path, lines: int = 3000) -> str:
    with gzip.open(DATASET, "rt", encoding="utf-8") as src, open(path, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i > lines:
                break
            dst.write(line)
    return str(path)


@pytest.mark.parametrize("command", [[], ["serve"], ["demo"], ["import-products"], ["import-orders"], ["train"], ["plugins"], ["sites"], ["create-site"], ["create-admin"], ["db", "upgrade"], ["evaluate"]])
def test_every_command_has_help(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and len(result.output.splitlines()) > 3


def test_import_orders_then_train(runner, tmp_path):
    sample = uci_sample(tmp_path / "orders.csv")
    result = runner.invoke(cli, ["import-orders", sample])
    assert result.exit_code == 0, result.output
    assert "orders" in result.output and "customers" in result.output
    again = runner.invoke(cli, ["import-orders", sample])
    assert "0 orders" in again.output, "re-importing skips known orders"
    trained = runner.invoke(cli, ["train"])
    assert trained.exit_code == 0, trained.output
    assert "model" in trained.output


def test_import_orders_names_the_bad_line(runner, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n"
        "536366,71053,WHITE METAL LANTERN,six,2010-12-01 08:28:00,3.39,17850,United Kingdom\n"
    )
    result = runner.invoke(cli, ["import-orders", str(bad)])
    assert result.exit_code != 0
    assert "line 3" in result.output and "Quantity" in result.output


def test_import_orders_names_missing_columns(runner, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("order,sku\n1,2\n")
    result = runner.invoke(cli, ["import-orders", str(bad)])
    assert result.exit_code != 0 and "missing column" in result.output and "InvoiceNo" in result.output


def test_import_products(runner, tmp_path):
    runner.invoke(cli, ["create-site", "Shop", "--origin", "https://shop.example"])
    csv = tmp_path / "products.csv"
    csv.write_text("id,title,price,in_stock,colour\nA1,Red mug,9.5,yes,red\nA2,Blue mug,,no,blue\n")
    result = runner.invoke(cli, ["import-products", str(csv)])
    assert result.exit_code == 0, result.output
    assert "2 new" in result.output
    csv.write_text("id,title,price,in_stock\nA1,Red mug,10.5,yes\nA3,,1,yes\n")
    result = runner.invoke(cli, ["import-products", str(csv)])
    assert result.exit_code != 0 and "line 3" in result.output and "title" in result.output


def test_create_site_and_list(runner):
    result = runner.invoke(cli, ["create-site", "Corner shop", "--origin", "https://corner.example"])
    assert result.exit_code == 0 and "pk_" in result.output and "sk_" in result.output
    listing = runner.invoke(cli, ["sites"])
    assert "Corner shop" in listing.output and "https://corner.example" in listing.output
    dup = runner.invoke(cli, ["create-site", "Corner shop"])
    assert dup.exit_code != 0 and "exists already" in dup.output
    bad = runner.invoke(cli, ["create-site", "Other", "--origin", "shop.example"])
    assert bad.exit_code != 0 and "allowed_origins" in bad.output


def test_a_name_two_sites_share_is_refused_naming_their_ids(runner):
    assert runner.invoke(cli, ["create-site", "Twin"]).exit_code == 0
    refused = runner.invoke(cli, ["create-site", "Twin"])
    assert refused.exit_code != 0 and "--allow-duplicate-name" in refused.output and "(id 1)" in refused.output
    second = runner.invoke(cli, ["create-site", "Twin", "--allow-duplicate-name"])
    assert second.exit_code == 0 and "site 2: Twin" in second.output
    for command in (["train", "--site", "Twin"], ["scores", "--site", "Twin"], ["connections", "Twin"], ["holdout", "--site", "Twin"]):
        result = runner.invoke(cli, command)
        assert result.exit_code != 0, command
        assert "two sites are named 'Twin' (ids 1, 2): give the id" in result.output, (command, result.output)
    result = runner.invoke(cli, ["connections", "2"])
    assert result.exit_code == 0 and "Twin has no connections" in result.output


def test_create_admin_asks_for_the_password(runner):
    from personalize.admin.users import authenticate
    from personalize.app import create_app

    password = "a long admin password"
    result = runner.invoke(cli, ["create-admin", "Boss@Shop.example"], input=f"{password}\n{password}\n")
    assert result.exit_code == 0, result.output
    assert password not in result.output and "boss@shop.example can now sign in at /admin as owner" in result.output
    again = runner.invoke(cli, ["create-admin", "boss@shop.example"], input=f"{password}\n{password}\n")
    assert again.exit_code != 0 and "has an account already" in again.output
    short = runner.invoke(cli, ["create-admin", "short@shop.example"], input="short\nshort\n")
    assert short.exit_code != 0 and "password: a password needs at least 10 characters" in short.output
    runner.invoke(cli, ["create-site", "Corner shop"])
    viewer = runner.invoke(cli, ["create-admin", "viewer@shop.example", "--role", "viewer", "--site", "Corner shop"],
                           input=f"{password}\n{password}\n")
    assert viewer.exit_code == 0 and "as viewer; sites: 1 Corner shop" in viewer.output
    with create_app().app_context():
        from personalize.admin.access import granted_site_ids

        assert authenticate("boss@shop.example", password).role == "owner"
        assert granted_site_ids(authenticate("viewer@shop.example", password)) == {1}


def test_train_without_sites_says_what_to_do(runner):
    result = runner.invoke(cli, ["train"])
    assert result.exit_code != 0 and "import" in result.output


def test_plugins_lists_hooks(runner):
    result = runner.invoke(cli, ["plugins"])
    assert result.exit_code == 0
    assert "personalize.builtins.rules" in result.output and "modify_recommendations" in result.output


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "personalize", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "personalize" in out.stdout
