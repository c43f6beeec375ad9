"""Fixtures for the admin pages: accounts of each role, signed-in clients."""

from __future__ import annotations

import re

import pytest

from personalize.admin.users import create_admin_user

PASSWORD = "correct horse battery"


def csrf(client, path="/admin/"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client, email, password=PASSWORD):
    token = csrf(client, "/admin/login")
    return client.post("/admin/login", data={"email": email, "password": password, "csrf_token": token})


def post(client, path, data=None, **kwargs):
    """POST a form with the session's CSRF token, as the browser would."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf(client)}, **kwargs)


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch):
    """The same scrypt, at a low cost: production's cost takes 0.3 s a hash, and these tests hash often."""
    from functools import partial

    from werkzeug.security import generate_password_hash

    monkeypatch.setattr("personalize.admin.users.generate_password_hash", partial(generate_password_hash, method="scrypt:1024:8:1"))


@pytest.fixture
def owner(ctx):
    create_admin_user("owner@shop.example", PASSWORD, "owner")
    return "owner@shop.example", PASSWORD


@pytest.fixture
def as_owner(client, owner):
    sign_in(client, *owner)
    return client


def make_user(email, role, site_ids=()):
    from personalize.admin.access import set_site_access

    user = create_admin_user(email, PASSWORD, role)
    set_site_access(user, set(site_ids))
    return user
