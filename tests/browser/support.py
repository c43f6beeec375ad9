"""Helpers for the widget's browser tests: a shop's web server, test catalogues, waiting."""

from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def wait_for(check, timeout: float = 8.0, interval: float = 0.1, message: str = "condition"):
    """Poll ``check()`` until it returns something truthy; return that, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {message}")
        time.sleep(interval)


PICTURE = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><rect width="40" height="40" fill="#ccc"/></svg>'


class Shop:
    """A shop's web server on its own port: pages registered by tests, product pages for free."""

    def __init__(self):
        self.pages: dict[str, tuple[str, dict]] = {}
        self.reco_url = ""
        self.public_key = ""
        shop = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                if path in shop.pages:
                    html, headers = shop.pages[path]
                elif m := re.fullmatch(r"/product/([\w-]+)", path):
                    html, headers = shop.product_page(m.group(1)), {}
                elif path.startswith("/img/"):
                    html, headers = PICTURE, {"Content-Type": "image/svg+xml"}
                else:
                    self.send_error(404)
                    return
                body = html.encode()
                self.send_response(200)
                if "Content-Type" not in headers:
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snippet(self, key: str | None = None, nonce: str | None = None, **data: str) -> str:
        """The script tag exactly as a shop owner pastes it; ``data`` adds data-* attributes."""
        attrs = "".join(f' data-{k.replace("_", "-")}="{v}"' for k, v in data.items())
        n = f' nonce="{nonce}"' if nonce else ""
        return (f'<script async src="{self.reco_url}/static/widget.js" '
                f'data-shop="{key or self.public_key}"{attrs}{n}></script>')

    def page(self, path: str, body: str, title: str = "A shop", headers: dict | None = None) -> str:
        """Serve ``body`` at ``path``; return the page's full URL."""
        html = f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head><body>{body}</body></html>'
        self.pages[path] = (html, headers or {})
        return self.url + path

    def product_page(self, product_id: str) -> str:
        return (
            f'<!doctype html><html><head><title>Product {product_id}</title></head><body>'
            f'<h1>Product {product_id}</h1>'
            f'<div data-personalize-slot="product" data-limit="4" style="min-height:200px"></div>'
            f'{self.snippet(product_id=product_id)}</body></html>'
        )

    def close(self):
        self.server.shutdown()
        self.server.server_close()


SLOT = '<div data-personalize-slot="home" data-limit="{limit}" style="min-height:300px"{extra}><p id="fallback">Our bestsellers</p></div>'


def slot(limit: int = 4, **data: str) -> str:
    extra = "".join(f' data-{k.replace("_", "-")}="{v}"' for k, v in data.items())
    return SLOT.format(limit=limit, extra=extra)


SHOES = [f"s{i}" for i in range(1, 9)]
BOOKS = [f"b{i}" for i in range(1, 9)]


def make_site(app, shop_url: str, products, histories=()) -> dict:
    """Create a site allowing ``shop_url``, load ``products`` and event ``histories``, train it."""
    from personalize.catalog import upsert_products
    from personalize.profiles import ingest_events
    from personalize.recommend.service import train_site
    from personalize.sites import create_site

    with app.app_context():
        site, _secret = create_site(f"browser-{uuid.uuid4().hex[:10]}", [shop_url])
        upsert_products(site.id, products)
        if histories:
            ingest_events(site, list(histories))
        train_site(site.id)
        return {"id": site.id, "public_key": site.public_key}


def catalog(shop_url: str):
    from personalize.records import ProductRecord

    for pid in SHOES + BOOKS:
        kind = "shoes" if pid in SHOES else "books"
        yield ProductRecord(
            id=pid,
            title=f"{'Running shoe' if kind == 'shoes' else 'Novel'} {pid}",
            url=f"{shop_url}/product/{pid}",
            image=f"{shop_url}/img/{pid}.svg",
            price=20.0 + int(pid[1:]),
            currency="EUR",
            category=kind,
        )


def histories():
    """Shoe people browse and buy shoes, book people books; shoe people are the majority."""
    rng = random.Random(7)
    now = int(time.time() * 1000) - 3_600_000
    n = 0
    for group, items, people in (("shoe", SHOES, 40), ("book", BOOKS, 20)):
        for v in range(people):
            visitor = f"hist-{group}-{v}"
            for pid in rng.sample(items, 4):
                n += 1
                yield {"id": f"h{n}", "type": "product_viewed", "visitor": visitor, "ts": now + n, "product_id": pid}
            pid = rng.choice(items)
            n += 1
            yield {"id": f"h{n}", "type": "order_completed", "visitor": visitor, "ts": now + n,
                   "order_id": f"o{n}", "items": [{"product_id": pid, "quantity": 1, "price": 25.0}]}


def closed_port() -> int:
    """A local port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlowApi:
    """An API that answers recommendations correctly, but only after ``delay`` seconds."""

    def __init__(self, delay: float, answer: dict):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                time.sleep(delay)
                body = json.dumps(answer).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Access-Control-Allow-Origin", "*")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the widget gave up and closed the connection, as it should

            def do_POST(self):
                self.send_response(202)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
