"""The demo shop's pages: a small store that embeds the widget exactly as a shop owner would.

The pages read the catalogue through :mod:`personalize.catalog`, like any other
part of the server. They hold no inline scripts or event handlers: the cart,
sign-in and "switch visitor" behaviour lives in ``static/shop.js``.
"""

from __future__ import annotations

from functools import lru_cache

from flask import Blueprint, Response, abort, current_app, render_template, request

from personalize.catalog import get_product, list_products
from personalize.demo.catalog import CATEGORIES, CATEGORY_BY_SLUG, category_slug, demo_products
from personalize.demo.images import product_svg

SHOP_NAME = "Hearth & Trail"
DEMO_SITE_NAME = "Demo shop"
HOME_LIMIT = 8
RELATED_LIMIT = 4

bp = Blueprint(
    "demo",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/demo/static",
)


def demo_site() -> tuple[int | None, str]:
    """The demo site's id and public key, from the app config or (once) from the database."""
    config = current_app.config
    if not config.get("DEMO_SITE_ID"):
        from personalize.sites import get_site_by_name

        site = get_site_by_name(DEMO_SITE_NAME)
        if site is None:
            return None, ""
        config["DEMO_SITE_ID"], config["DEMO_PUBLIC_KEY"] = site.id, site.public_key
    return config["DEMO_SITE_ID"], config.get("DEMO_PUBLIC_KEY", "")


def _widget_src() -> str:
    # The widget is served by the core app; the demo embeds it by absolute URL,
    # the way a shop on another domain would.
    return (
        current_app.config.get("DEMO_WIDGET_URL")
        or request.url_root.rstrip("/") + "/static/widget.js"
    )


@bp.context_processor
def _shop_context() -> dict:
    return {
        "shop_name": SHOP_NAME,
        "nav_categories": CATEGORIES,
        "category_slug": category_slug,
        "widget_src": _widget_src(),
    }


@lru_cache(maxsize=1)
def _demo_catalogue() -> dict:
    return {p.id: p for p in demo_products()}


def _require_site() -> tuple[int, str]:
    site_id, public_key = demo_site()
    if site_id is None:
        abort(Response(render_template("demo/not_ready.html"), status=503))
    return site_id, public_key


def _best_sellers(site_id: int) -> list:
    """What the shop shows when no personal recommendations arrive: its best sellers."""
    ids = current_app.config.get("DEMO_BEST_SELLERS") or []
    products = [
        p for p in (get_product(site_id, pid) for pid in ids) if p is not None and p.in_stock
    ]
    if len(products) < HOME_LIMIT:
        # No sales figures at hand: the first available product of each category.
        for category in CATEGORIES:
            for p in list_products(site_id, category=category.label, in_stock=True, limit=1):
                if p.external_id not in {q.external_id for q in products}:
                    products.append(p)
    return products[:HOME_LIMIT]


@bp.route("/")
def home():
    site_id, public_key = _require_site()
    return render_template(
        "demo/home.html",
        public_key=public_key,
        best_sellers=_best_sellers(site_id),
        limit=HOME_LIMIT,
    )


@bp.route("/category/<slug>")
def category(slug: str):
    site_id, public_key = _require_site()
    entry = CATEGORY_BY_SLUG.get(slug)
    if entry is None:
        abort(404)
    products = list_products(site_id, category=entry.label, limit=200)
    return render_template(
        "demo/category.html", public_key=public_key, category=entry, products=products
    )


@bp.route("/product/<product_id>")
def product(product_id: str):
    site_id, public_key = _require_site()
    item = get_product(site_id, product_id)
    if item is None:
        abort(404)
    related = [
        p
        for p in list_products(
            site_id, category=item.category, in_stock=True, limit=RELATED_LIMIT + 1
        )
        if p.external_id != item.external_id
    ][:RELATED_LIMIT]
    return render_template(
        "demo/product.html",
        public_key=public_key,
        product=item,
        category=CATEGORY_BY_SLUG.get(category_slug(item.category)),
        related=related,
        limit=RELATED_LIMIT,
    )


@bp.route("/cart")
def cart():
    _site_id, public_key = _require_site()
    return render_template("demo/cart.html", public_key=public_key)


@bp.route("/account")
def account():
    _site_id, public_key = _require_site()
    return render_template("demo/account.html", public_key=public_key)


@bp.route("/demo/img/<product_id>.svg")
def product_image(product_id: str):
    site_id, _public_key = demo_site()
    item = get_product(site_id, product_id) if site_id is not None else None
    item = item or _demo_catalogue().get(product_id)
    if item is None:
        abort(404)
    response = Response(product_svg(item), mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
