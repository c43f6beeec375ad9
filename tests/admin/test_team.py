"""The team page: owners add people with roles and sites, change them, remove them (never the
last owner); everyone changes their own password."""

from __future__ import annotations

from personalize.admin.access import site_ids_for
from personalize.admin.users import authenticate, get_admin_user

from .conftest import PASSWORD, csrf, make_user, post, sign_in


def test_owner_adds_an_editor_for_one_site(as_owner, site):
    r = post(as_owner, "/admin/team", {"email": "Ed@Shop.example", "password": "a good long one", "role": "editor", "sites": [str(site.id)]})
    assert r.status_code == 302
    ed = get_admin_user("ed@shop.example")
    assert ed.role == "editor" and site_ids_for(ed) == {site.id}
    assert ed.password_hash != "a good long one" and ed.password_hash.startswith("scrypt:")
    page = as_owner.get("/admin/team").get_data(as_text=True)
    assert "ed@shop.example" in page


def test_owner_changes_role_and_sites(as_owner, site):
    user = make_user("view@shop.example", "viewer")
    post(as_owner, f"/admin/team/{user.id}", {"role": "editor", "sites": [str(site.id)]})
    user = get_admin_user("view@shop.example")
    assert user.role == "editor" and site_ids_for(user) == {site.id}
    post(as_owner, f"/admin/team/{user.id}", {"role": "viewer"})
    assert site_ids_for(get_admin_user("view@shop.example")) == set()


def test_the_last_owner_cannot_be_removed_or_demoted(as_owner, owner):
    me = get_admin_user(owner[0])
    r = post(as_owner, f"/admin/team/{me.id}/remove", follow_redirects=True)
    assert b"last owner cannot be removed" in r.data
    r = post(as_owner, f"/admin/team/{me.id}", {"role": "viewer"}, follow_redirects=True)
    assert b"last owner" in r.data
    assert get_admin_user(owner[0]).role == "owner"


def test_an_owner_can_be_removed_when_another_remains(as_owner):
    other = make_user("second@shop.example", "owner")
    assert post(as_owner, f"/admin/team/{other.id}/remove").status_code == 302
    assert get_admin_user("second@shop.example") is None


def test_editors_and_viewers_cannot_manage_the_team(client, owner):
    target = get_admin_user(owner[0])
    make_user("ed@shop.example", "editor")
    sign_in(client, "ed@shop.example")
    assert client.get("/admin/team").status_code == 403
    assert post(client, "/admin/team", {"email": "x@shop.example", "password": PASSWORD, "role": "owner"}).status_code == 403
    assert post(client, f"/admin/team/{target.id}/remove").status_code == 403
    assert post(client, f"/admin/team/{target.id}", {"role": "viewer"}).status_code == 403
    assert get_admin_user("x@shop.example") is None and get_admin_user(owner[0]).role == "owner"


def test_password_change(as_owner, owner):
    data = {"current_password": "wrong password!!", "new_password": "brand new secret", "repeat_password": "brand new secret"}
    r = post(as_owner, "/admin/account", data)
    assert r.status_code == 400 and b"current password is wrong" in r.data
    r = post(as_owner, "/admin/account", {**data, "current_password": owner[1], "repeat_password": "something else"})
    assert r.status_code == 400 and b"differ" in r.data
    r = post(as_owner, "/admin/account", {**data, "current_password": owner[1]})
    assert r.status_code == 302
    assert authenticate(owner[0], "brand new secret") is not None
    assert authenticate(owner[0], owner[1]) is None


def test_a_removed_user_is_signed_out(client, owner):
    user = make_user("gone@shop.example", "viewer")
    sign_in(client, "gone@shop.example")
    assert client.get("/admin/").status_code == 200
    from personalize.admin.users import remove_admin_user

    remove_admin_user(user)
    assert client.get("/admin/").status_code == 302
    assert csrf(client, "/admin/login")
