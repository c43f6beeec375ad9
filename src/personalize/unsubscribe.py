"""``/email/unsubscribe/<token>``: the link in every journey email, and its RFC 8058 one-click POST.

A GET shows a page with a button (mail scanners follow links, so a GET changes
nothing); a POST, from that button or from a mail client's one-click unsubscribe
(``List-Unsubscribe=One-Click``, no cookie, no form token: the signed token in the
address is the proof), sets the person's ``unsubscribed_email`` attribute. A token
that is not valid answers 404, however it is wrong.
"""

from __future__ import annotations

from flask import Blueprint, Response, request
from markupsafe import escape

bp = Blueprint("unsubscribe", __name__)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title></head>
<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5">
<h1 style="font-size:1.4rem">{title}</h1>{body}</body></html>"""


def _page(title: str, body: str, status: int = 200) -> Response:
    response = Response(PAGE.format(title=escape(title), body=body), status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/email/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str):
    from .journeys.email import read_unsubscribe_token
    from .journeys.email import unsubscribe as unsubscribe_person
    from .sites import get_site

    found = read_unsubscribe_token(token)
    if found is None:
        return _page("This link is not valid", "<p>Check that the whole address from the email was opened.</p>", 404)
    site_id, profile_id = found
    shop = escape(get_site(site_id).name)
    if request.method == "GET":
        return _page(
            f"Unsubscribe from {shop}",
            f"<p>You will no longer receive marketing emails from {shop}.</p>"
            f'<form method="post"><button type="submit" style="font-size:1rem;padding:.5rem 1rem">Unsubscribe</button></form>',
        )
    if not unsubscribe_person(site_id, profile_id):
        return _page("This link is not valid", "<p>Check that the whole address from the email was opened.</p>", 404)
    return _page("You are unsubscribed", f"<p>You will no longer receive marketing emails from {shop}.</p>")
