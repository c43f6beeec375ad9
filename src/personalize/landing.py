"""The server's front door: ``/`` says what this is and where to go (the admin, the docs).

It answers only when nothing else claims ``/`` (the demo shop, a plugin's blueprint): it is
served in place of the 404 that path would get (see ``api/errors.py``).
"""

from __future__ import annotations

from flask import current_app, render_template_string, request

DOCS = "https://github.com/personalize/personalize/tree/main/docs"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>personalize</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;background:#f6f7f9;margin:0}
main{max-width:640px;margin:48px auto;padding:0 24px}
.card{background:#fff;border:1px solid #dfe3ea;border-radius:8px;padding:20px 24px;margin-bottom:16px}
h1{font-size:24px;margin:0 0 8px}h2{font-size:17px;margin:0 0 8px}a{color:#2f6fed}code{font-size:13px}
.muted{color:#5b6475}
</style></head>
<body><main>
<div class="card">
  <h1>personalize is running</h1>
  <p class="muted">A personalization server for online shops, version {{ version }}. Shops embed its widget; this page is for the people who run it.</p>
</div>
<div class="card">
  <h2><a href="{{ admin }}">Open the admin</a></h2>
  {% if first_run %}
  <p id="first-run">No admin account exists yet. Open the <strong>set-up link</strong> that <code>personalize serve</code> printed when it started
  (<code>First run: create the owner account at …/admin/setup?token=…</code>), or create the owner on the server with
  <code>personalize create-admin you@example.com</code>.</p>
  {% else %}
  <p>Sites, keys and the snippet to paste into your shop, customers, segments and recommendations.</p>
  {% endif %}
</div>
<div class="card">
  <h2>Documentation</h2>
  <ul>
    <li><a href="{{ docs }}/quickstart.md">Quick start</a>: your own shop in five minutes</li>
    <li><a href="{{ docs }}/widget.md">Embedding the widget</a>: the snippet, its attributes, data-layer capture</li>
    <li><a href="{{ docs }}/api.md">The API</a> (machine-readable: <a href="{{ openapi }}">{{ openapi }}</a>)</li>
  </ul>
  <p class="muted">Health check: <a href="{{ health }}">{{ health }}</a></p>
</div>
</main></body></html>"""


def landing_page():
    from .admin.users import count_admin_users

    try:
        first_run = count_admin_users() == 0
    except Exception:  # no schema yet: the admin link says the rest
        first_run = False
    html = render_template_string(
        PAGE, version=current_app.config.get("VERSION", ""), admin="/admin/", docs=DOCS, first_run=first_run,
        openapi="/api/v1/openapi.json", health="/api/v1/health",
    )
    return html, 200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}


def is_front_door() -> bool:
    return request.path == "/" and request.method in ("GET", "HEAD")
