"""Admin sign-in attempts are limited per client address and per account, so passwords cannot be guessed at speed."""

from __future__ import annotations

from .conftest import PASSWORD, csrf


def attempt(client, email, password, address="198.51.100.7"):
    token = csrf(client, "/admin/login")
    return client.post("/admin/login", data={"email": email, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": address})


def test_guessing_from_one_address_is_stopped_and_the_password_no_longer_checked(app, client, owner):
    app.config.update(SIGN_IN_LIMIT_PER_ADDRESS=5, SIGN_IN_LIMIT_PER_ACCOUNT=0)
    for n in range(5):
        r = attempt(client, owner[0], f"guess-{n}")
        assert r.status_code == 401 and "Wrong email or password" in r.get_data(as_text=True)
    r = attempt(client, owner[0], PASSWORD)  # the right password, but over the limit: not even checked
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 120  # until one more attempt fits in the sliding minute
    assert "Too many sign-in attempts" in r.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302, "not signed in"
    # another address is not held back by this one
    r = attempt(client, owner[0], PASSWORD, address="203.0.113.50")
    assert r.status_code == 302 and client.get("/admin/").status_code == 200


def test_guessing_one_account_from_many_addresses_is_stopped(app, client, owner):
    app.config.update(SIGN_IN_LIMIT_PER_ADDRESS=0, SIGN_IN_LIMIT_PER_ACCOUNT=3)
    for n in range(3):
        assert attempt(client, owner[0].upper(), f"guess-{n}", address=f"192.0.2.{n + 1}").status_code == 401
    r = attempt(client, f"  {owner[0]} ", PASSWORD, address="192.0.2.99")  # the same account, however it is typed
    assert r.status_code == 429 and "Retry-After" in r.headers
    # other accounts are not affected
    assert attempt(client, "nobody@shop.example", "x", address="192.0.2.99").status_code == 401


def test_limits_off_let_every_attempt_through(app, client, owner):
    app.config.update(SIGN_IN_LIMIT_PER_ADDRESS=0, SIGN_IN_LIMIT_PER_ACCOUNT=0)
    for n in range(40):
        assert attempt(client, owner[0], f"guess-{n}").status_code == 401
    assert attempt(client, owner[0], PASSWORD).status_code == 302
