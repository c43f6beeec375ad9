"""First run: who may create the first (owner) account.

A fresh server has no account, and whoever opens ``/admin/setup`` first would own it;
a server started with ``--host 0.0.0.0`` is reachable by anyone on the network before
its operator gets there. So the page asks for a setup token, which ``personalize serve``
prints on its console while no account exists (as Jupyter prints its login token).

The token is an HMAC of the server's ``SECRET_KEY``: every web process, on every machine
sharing the key, computes the same one with nothing to store or to clean up, and only
someone who can read the console (or the key) knows it. It opens the page only while no
account exists. Without a console, ``personalize create-admin EMAIL`` creates the owner.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_CONTEXT = b"personalize first-run setup token v1"


def setup_token(secret_key: str) -> str:
    """The setup token of a server whose ``SECRET_KEY`` is ``secret_key`` (32 URL-safe characters, 192 bits)."""
    if not secret_key:
        raise ValueError("no SECRET_KEY to derive the setup token from")
    digest = hmac.new(secret_key.encode(), _CONTEXT, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


def setup_token_matches(secret_key: str, sent: object) -> bool:
    """Whether ``sent`` is the setup token (compared in constant time)."""
    if not isinstance(sent, str) or not sent or len(sent) > 100:
        return False
    return hmac.compare_digest(sent.encode(), setup_token(secret_key).encode())


def setup_url(base_url: str, secret_key: str) -> str:
    return f"{base_url.rstrip('/')}/admin/setup?token={setup_token(secret_key)}"
