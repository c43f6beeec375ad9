"""The demo shop's pages: the widget embedded as a shop owner would, and nothing inline or external."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from personalize.demo.catalog import demo_products

PAGES = ["/", "/category/coffee-tea", "/product/P1001", "/cart", "/account"]


class Tags(HTMLParser):
    """Every start tag of a page as (name, attributes); a bare attribute has the value None."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def find(self, tag: str, **attrs) -> list[dict]:
        return [
            a
            for t, a in self.tags
            if t == tag and all(k in a and a[k] == v for k, v in attrs.items())
        ]


@pytest.fixture(scope="module")
def client(built):
    return built[0].test_client()


@pytest.fixture(scope="module")
def info(built):
    return built[1]


def page(client, path: str) -> Tags:
    response = client.get(path)
    assert response.status_code == 200, path
    return Tags(response.get_data(as_text=True))


@pytest.mark.parametrize("path", PAGES)
def test_every_page_embeds_the_widget_once_with_the_site_key(client, info, path):
    widget = [a for a in page(client, path).find("script") if "widget.js" in a.get("src", "")]
    assert len(widget) == 1
    assert widget[0]["src"] == "http://localhost/static/widget.js"  # absolute, like on a real shop
    assert widget[0]["data-shop"] == info["public_key"]
    assert widget[0]["data-consent"] == "implied"
    assert "async" in widget[0]


@pytest.mark.parametrize("path", PAGES)
def test_pages_have_no_inline_script_handlers_or_external_resources(client, path):
    tags = page(client, path)
    for tag, attrs in tags.tags:
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        if tag == "script":
            assert attrs.get("src"), "inline <script>"
        for name in ("src", "href"):
            url = attrs.get(name) or ""
            assert not url.startswith("javascript:")
            if url.startswith(("http:", "https:", "//")):
                assert url.startswith("http://localhost/"), url


def test_home_has_the_slot_as_pasted_with_best_sellers_as_fallback(client):
    response = client.get("/")
    html = response.get_data(as_text=True)
    slot = Tags(html).find("div", **{"data-personalize-slot": "home"})
    assert len(slot) == 1
    assert slot[0]["data-limit"] == "8"
    assert re.match(r"min-height:\s*\d+px", slot[0]["style"])
    inside = html.split('data-personalize-slot="home"', 1)[1]
    assert "Best sellers" in inside
    assert len(re.findall(r'class="card[" ]', inside)) == 8
    for link in Tags(html).find("a"):
        if "/demo/static" in link.get("href", ""):
            raise AssertionError("static files are not links")


def test_product_page_tells_the_widget_which_product_it_shows(client):
    tags = page(client, "/product/P1001")
    widget = next(a for a in tags.find("script") if "widget.js" in a.get("src", ""))
    assert widget["data-product-id"] == "P1001"
    assert tags.find("div", **{"data-personalize-slot": "product"})
    button = tags.find("button", **{"data-add-to-cart": None})
    assert button and button[0]["data-product-id"] == "P1001"
    assert float(button[0]["data-price"]) == demo_products()[0].price


def test_a_sold_out_product_cannot_be_added(client):
    sold_out = next(p for p in demo_products() if not p.in_stock)
    tags = page(client, f"/product/{sold_out.id}")
    assert not tags.find("button", **{"data-add-to-cart": None})
    assert tags.find("button", disabled=None)


def test_category_page_lists_the_whole_category(client):
    html = client.get("/category/running").get_data(as_text=True)
    running = [p for p in demo_products() if p.attributes["category_slug"] == "running"]
    for product in running:
        assert f'href="/product/{product.id}"' in html
    assert "Trail" in html or "Running" in html


def test_titles_are_escaped(client, built):
    from personalize.catalog import upsert_products
    from personalize.records import ProductRecord

    app, info, _progress = built
    with app.app_context():
        upsert_products(
            info["site_id"],
            [
                ProductRecord(
                    "PX1", '<script>alert("x")</script> & Co', category="Kitchen", price=5.0
                )
            ],
        )
    html = client.get("/product/PX1").get_data(as_text=True)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert" in html


@pytest.mark.parametrize("path", ["/product/NOPE", "/category/nope", "/demo/img/NOPE.svg"])
def test_unknown_things_are_404(client, path):
    assert client.get(path).status_code == 404


def test_product_pictures_are_svg_with_a_cache_header(client):
    response = client.get("/demo/img/P1001.svg")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert "max-age=" in response.headers["Cache-Control"]
    assert ET.fromstring(response.data).tag.endswith("svg")


def test_the_shop_script_and_styles_are_served(client):
    for path, kind in (("/demo/static/shop.js", "javascript"), ("/demo/static/shop.css", "css")):
        response = client.get(path)
        assert response.status_code == 200 and kind in response.mimetype
    script = client.get("/demo/static/shop.js").get_data(as_text=True)
    for call in ("'product_added'", "'order_completed'", "'identify'", "pz_vid"):
        assert call in script


def test_before_the_demo_is_built_the_shop_says_how_to_build_it(fresh_app):
    client = fresh_app().test_client()
    response = client.get("/")
    assert response.status_code == 503
    assert "personalize demo" in response.get_data(as_text=True)
