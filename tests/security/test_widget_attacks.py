"""The widget under attack and under failure, in real headless Chromium.

Hostile product data (markup, script URLs, huge and bidirectional strings) reaches the
widget through the real products API and through the path connectors store by; the API
is slow, down, answers garbage or is blocked; the page has a strict Content-Security-Policy;
the visitor refuses consent. Whatever happens: no script of ours or of the data runs, no
uncaught error, the shop's own script and fallback HTML stay, and without consent not one
event request leaves the page.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

# tests/browser's helpers: the shop's web server, a closed port, a slow API, polling
from browser.support import Shop, SlowApi, closed_port, wait_for
from personalize.testing import serve_in_thread

pytestmark = pytest.mark.browser

# What the page reports: dialogs opened, markers hostile data would set, CSP violations, renders.
SPY = """
window.__rendered = []; window.__csp = [];
document.addEventListener('personalize:rendered', function (e) {
  window.__rendered.push({slot: e.detail.slot, items: e.detail.items.map(function (i) { return String(i.id); })});
});
document.addEventListener('securitypolicyviolation', function (e) {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""

# Every hostile string sets window.__pwned or opens a dialog if it ever runs.
MARKUP = [
    '<img src=x onerror="window.__pwned=1;alert(1)">',
    "<script>window.__pwned=2;alert(2)</script>",
    '"><svg onload="window.__pwned=3;alert(3)">',
    "'><iframe src=\"javascript:window.top.__pwned=4\"></iframe>",
    "<a href=\"javascript:window.__pwned=5\">x</a><style>*{display:none!important}</style>",
]
RTL = "\u202eevil\u202c \u200b\u200d\u2066gpj.exe\u2069 \u0301\u0301 \U0001f600 \ufeff"
# URLs the products API must refuse, and that connectors may still bring in.
SCRIPT_URLS = [
    "javascript:window.__pwned=10;alert(10)",
    "JaVaScRiPt:window.__pwned=11",
    "java\tscript:window.__pwned=12",
    " javascript:window.__pwned=13",
    "data:text/html,<script>window.__pwned=14</script>",
    "data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg' onload='window.__pwned=15'/>",
    "vbscript:msgbox(16)",
]
# Refused by the products API too (a link to another host with the page's scheme), though not script.
REFUSED_BY_API = [*SCRIPT_URLS, "//evil.example/steal"]


class Page:
    """One page in a fresh browser context, with everything it reported."""

    def __init__(self, context):
        self.context = context
        self.page = context.new_page()
        self.page.set_default_timeout(10000)
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.console: list[str] = []
        self.page.on("pageerror", lambda err: self.errors.append(str(err)))
        self.page.on("dialog", self._dialog)
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        context.on("request", lambda r: self.requests.append(r.url))

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def sent(self, path: str) -> list[str]:
        return [u for u in self.requests if path in u]

    def rendered(self, count: int = 1) -> list[dict]:
        return wait_for(lambda: (r := self.page.evaluate("window.__rendered")) and len(r) >= count and r,
                        timeout=10, interval=0.05, message=f"{count} render(s)")

    def until(self, check, message: str):
        """Wait for ``check()`` while letting Playwright deliver the page's events and routes."""
        return wait_for(lambda: (self.page.wait_for_timeout(50), check())[1], timeout=10, interval=0, message=message)

    def flush(self) -> None:
        self.page.evaluate("window.dispatchEvent(new Event('pagehide'))")
        self.page.wait_for_timeout(300)

    def slot_dom(self, selector: str = "[data-personalize-slot]") -> dict:
        """What ended up in the slot (shadow root or light DOM): tags, links, images, texts."""
        return self.page.locator(selector).first.evaluate("""el => {
            const root = el.shadowRoot || el;
            const all = [...root.querySelectorAll('*')];
            return {
              shadow: !!el.shadowRoot,
              tags: [...new Set(all.map(n => n.tagName.toLowerCase()))],
              handlers: all.flatMap(n => [...n.attributes].filter(a => /^on/i.test(a.name)).map(a => a.name)),
              hrefs: [...root.querySelectorAll('[href]')].map(a => a.getAttribute('href')),
              srcs: [...root.querySelectorAll('[src]')].map(i => i.getAttribute('src')),
              items: [...root.querySelectorAll('[data-personalize-item]')].map(a => a.getAttribute('data-personalize-item')),
              titles: [...root.querySelectorAll('.pz-title')].map(t => t.textContent),
              reasons: [...root.querySelectorAll('.pz-reason')].map(t => t.textContent),
              fallback: !!document.getElementById('fallback'),
            };
        }""")

    def assert_untouched(self):
        """Nothing hostile ran: no dialog, no marker, no uncaught error."""
        assert self.dialogs == [], self.dialogs
        assert self.page.evaluate("window.__pwned") is None
        assert self.page.evaluate("window.top.__pwned") is None
        assert self.errors == [], self.errors


@pytest.fixture
def open_page(browser):
    contexts = []

    def make(init_script: str | None = None) -> Page:
        context = browser.new_context()
        contexts.append(context)
        context.add_init_script(SPY)
        if init_script:
            context.add_init_script(init_script)
        return Page(context)

    yield make
    for context in contexts:
        context.close()


# ---------------------------------------------------------------- the real app and a shop


@pytest.fixture(scope="module")
def reco_app():
    from personalize.testing import throwaway_app

    with throwaway_app("pz-attack-") as app:
        yield app


@pytest.fixture(scope="module")
def reco(reco_app):
    with serve_in_thread(reco_app) as server:
        yield server


@pytest.fixture(scope="module")
def shop(reco):
    s = Shop()
    s.reco_url = reco.url
    yield s
    s.close()


def new_site(app, shop_url: str) -> tuple[int, str, str]:
    from personalize.sites import create_site

    with app.app_context():
        site, secret = create_site(f"attack-{uuid.uuid4().hex[:8]}", [shop_url])
        return site.id, site.public_key, secret


def make_popular(app, site_id: int, product_ids: list[str]) -> None:
    """Views from a few visitors, so every product is in the popular list."""
    from personalize.db import db
    from personalize.models import Site
    from personalize.profiles import ingest_events

    now = int(time.time() * 1000) - 60_000
    events = [{"id": f"pop-{i}-{v}", "type": "product_viewed", "visitor": f"crowd-{v}", "ts": now + i, "product_id": pid}
              for i, pid in enumerate(product_ids) for v in range(3)]
    with app.app_context():
        ingest_events(db.session.get(Site, site_id), events)


def post_products(reco, secret: str, products: list[dict]) -> requests.Response:
    return requests.post(f"{reco.url}/api/v1/products", json={"products": products},
                         headers={"Authorization": f"Bearer {secret}"}, timeout=30)


def store_as_connector(app, site_id: int, records) -> None:
    """The path a connector's pull takes (no products-API validation in front of it)."""
    from personalize.db import db
    from personalize.sync.store import store_products

    with app.app_context():
        store_products(site_id, list(records))
        db.session.commit()


@pytest.fixture(scope="module")
def hostile(reco_app, reco, shop):
    """A site whose catalogue is hostile: markup everywhere the API accepts it, plus script
    URLs stored the way a connector stores them. Returns what was stored and what was refused."""
    from personalize.records import ProductRecord

    site_id, public_key, secret = new_site(reco_app, shop.url)
    accepted = []
    for i, markup in enumerate(MARKUP):
        accepted.append({"id": f"m{i}", "title": markup, "url": f"/product/m{i}?q={markup}",
                         "image": f"/img/m{i}.svg?{markup}", "price": 10 + i, "currency": "EUR",
                         "description": markup, "category": markup[:100]})
    accepted.append({"id": "rtl", "title": RTL, "url": "/product/rtl", "price": 1.5, "currency": "<i>"})
    accepted.append({"id": '"><img src=x onerror=alert(20)>', "title": "Odd id", "url": "/product/odd"})
    response = post_products(reco, secret, accepted)
    assert response.status_code == 200, response.text

    refused = []
    for i, bad in enumerate(REFUSED_BY_API):
        for field in ("url", "image"):
            product = {"id": f"bad{i}", "title": "Bad", "url": "/product/ok", field: bad}
            r = post_products(reco, secret, [product])
            refused.append((field, bad, r.status_code, r.json()))
    r = post_products(reco, secret, [{"id": "huge", "title": "x" * 1_000_000, "url": "/product/huge"}])
    refused.append(("title", "1 MB", r.status_code, r.json()))

    # The same script URLs arriving from a connector: stored, and must never become live links.
    sneaked = [ProductRecord(id=f"s{i}", title=f"Sneaked {i}", url=bad, image="") for i, bad in enumerate(SCRIPT_URLS)]
    sneaked += [ProductRecord(id=f"i{i}", title=f"Safe link, bad image {i}", url=f"{shop.url}/product/i{i}", image=bad)
                for i, bad in enumerate(SCRIPT_URLS)]
    store_as_connector(reco_app, site_id, sneaked)
    ids = [p["id"] for p in accepted] + [p.id for p in sneaked]
    make_popular(reco_app, site_id, ids)
    return {"site_id": site_id, "key": public_key, "accepted": accepted, "refused": refused, "sneaked": sneaked,
            "payloads": len(accepted) + len(refused) + len(sneaked)}


def slot_html(limit: int = 8, render: str | None = None) -> str:
    extra = f' data-render="{render}"' if render else ""
    return (f'<div data-personalize-slot="home" data-limit="{limit}"{extra}><p id="fallback">Our bestsellers</p></div>'
            '<p id="own">waiting</p>')


OWN_SCRIPT = "<script>document.getElementById('own').textContent = 'shop script ran';</script>"


# ---------------------------------------------------------------- hostile product data


def test_the_products_api_refuses_script_urls_and_huge_titles_naming_the_field(hostile):
    for field, bad, status, body in hostile["refused"]:
        assert status in (400, 413), (field, bad, status)
        assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"], body
        if status == 400:
            assert body["error"]["field"] == f"products[0].{field}", (field, bad, body)


@pytest.mark.parametrize("render", [None, "light"], ids=["shadow", "light"])
def test_hostile_catalogue_renders_as_inert_text(hostile, shop, reco_app, open_page, render):
    tab = open_page()
    tab.page.goto(shop.page(f"/hostile-{render}", slot_html(limit=40, render=render)
                            + shop.snippet(key=hostile["key"]) + OWN_SCRIPT))
    shown = tab.rendered()[0]["items"]
    tab.page.wait_for_timeout(300)  # let any injected handler (onerror, onload) fire if it could
    dom = tab.slot_dom()
    tab.assert_untouched()
    assert tab.page.locator("#own").text_content() == "shop script ran"

    # Only the elements the widget builds; no handler attribute; every link and image http(s).
    assert set(dom["tags"]) <= {"ul", "li", "a", "img", "span", "h2"}, dom["tags"]
    assert dom["handlers"] == []
    assert dom["hrefs"] and all(h.startswith(shop.url + "/") for h in dom["hrefs"]), dom["hrefs"]
    assert all(s.startswith(shop.url + "/") for s in dom["srcs"]), dom["srcs"]
    # The markup is shown as text, exactly as stored.
    for product in hostile["accepted"]:
        assert product["title"] in dom["titles"], product["title"][:40]
    assert '"><img src=x onerror=alert(20)>' in dom["items"]
    # Products whose link is a script URL are left out; a script image is dropped, the item stays.
    assert not any(i.startswith("s") and i[1:].isdigit() for i in shown)
    assert {f"i{i}" for i in range(len(SCRIPT_URLS))} <= set(shown)
    if render == "light":
        assert not dom["shadow"] and not dom["fallback"]
    else:
        assert dom["shadow"]


def test_hostile_catalogue_still_reports_its_impression(hostile, shop, reco_app, open_page):
    """The events the widget sends about hostile items are accepted by the server, not refused."""
    from sqlalchemy import select

    from personalize.db import db
    from personalize.models import Event

    tab = open_page()
    tab.page.goto(shop.page("/hostile-events", slot_html(limit=40) + shop.snippet(key=hostile["key"])))
    tab.rendered()
    visitor = tab.page.evaluate("localStorage.getItem('pz_vid')")
    tab.flush()

    def stored():
        with reco_app.app_context():
            return db.session.scalars(select(Event.type).where(Event.site_id == hostile["site_id"], Event.visitor == visitor)).all()

    types = wait_for(lambda: (t := stored()) and "rec_impression" in t and t, message="the impression")
    assert sorted(types) == ["page_viewed", "rec_impression"]
    tab.assert_untouched()


def test_a_catalogue_with_only_script_links_keeps_the_fallback(reco_app, reco, shop, open_page):
    from personalize.records import ProductRecord

    site_id, key, _secret = new_site(reco_app, shop.url)
    store_as_connector(reco_app, site_id, [ProductRecord(id=f"p{i}", title=f"<b>p{i}</b>", url=u) for i, u in enumerate(SCRIPT_URLS)])
    make_popular(reco_app, site_id, [f"p{i}" for i in range(len(SCRIPT_URLS))])
    tab = open_page()
    api_answers = []
    tab.page.on("response", lambda r: api_answers.append(r.status) if "/api/v1/recommendations" in r.url else None)
    tab.page.goto(shop.page("/only-scripts", slot_html() + shop.snippet(key=key) + OWN_SCRIPT))
    tab.until(lambda: api_answers, "the recommendations answer")
    tab.page.wait_for_timeout(300)
    assert api_answers == [200]
    dom = tab.slot_dom()
    assert not dom["shadow"] and dom["fallback"] and dom["items"] == []
    assert tab.page.evaluate("window.__rendered.length") == 0
    assert tab.page.locator("#own").text_content() == "shop script ran"
    tab.assert_untouched()


HUGE = "W" * 1_000_000


def fulfil(tab, body: str | bytes, status: int = 200, content_type: str = "application/json"):
    tab.page.route("**/api/v1/recommendations**", lambda route: route.fulfill(
        status=status, body=body, content_type=content_type, headers={"Access-Control-Allow-Origin": "*"}))


def test_megabyte_strings_are_truncated_and_the_page_stays_responsive(hostile, shop, open_page):
    answer = {"rec_id": "r_huge", "slot": "home", "strategy": "popular", "items": [
        {"id": "big", "title": HUGE, "url": f"{shop.url}/product/big?{HUGE[:5000]}", "reason": HUGE, "price": 3.0, "currency": "EUR"},
        {"id": "x" * 100_000, "title": "An id nobody can store", "url": f"{shop.url}/product/x"},
        {"id": "rtl", "title": RTL * 20_000, "url": f"{shop.url}/product/rtl"},
    ]}
    tab = open_page()
    fulfil(tab, json.dumps(answer))
    tab.page.goto(shop.page("/huge", slot_html() + shop.snippet(key=hostile["key"]) + OWN_SCRIPT))
    tab.rendered()
    # The page still answers, and clicks on the shop's own elements still work.
    assert tab.page.evaluate("1 + 1") == 2
    tab.page.locator("#own").click()
    dom = tab.slot_dom()
    assert dom["items"] == ["big", "rtl"], "an id longer than any stored id is dropped"
    assert all(len(t) <= 200 for t in dom["titles"] + dom["reasons"]), [len(t) for t in dom["titles"]]
    assert dom["titles"][0].startswith("WWW") and dom["titles"][0].endswith("…")
    assert tab.page.locator("#own").text_content() == "shop script ran"
    tab.assert_untouched()


def test_an_api_answering_thousands_of_items_renders_only_the_limit(hostile, shop, open_page):
    items = [{"id": f"n{i}", "title": f"Item {i}", "url": f"{shop.url}/product/n{i}"} for i in range(5000)]
    tab = open_page()
    fulfil(tab, json.dumps({"rec_id": "r_many", "items": items}))
    tab.page.goto(shop.page("/many", slot_html(limit=6) + shop.snippet(key=hostile["key"])))
    tab.rendered()
    assert len(tab.slot_dom()["items"]) == 6
    tab.assert_untouched()


# ---------------------------------------------------------------- the API failing


GARBAGE = [
    ("truncated-json", 200, '{"rec_id": "r_1", "items": [{"id": "s1", "title": "Half', "application/json"),
    ("html-error-page", 502, "<html><body><script>window.__pwned=30</script>Bad gateway</body></html>", "text/html"),
    ("html-as-json", 200, "<script>window.__pwned=31</script>", "application/json"),
    ("wrong-types", 200, json.dumps({"rec_id": {"x": 1}, "items": {"0": {"id": "s1"}}}), "application/json"),
    ("item-types", 200, json.dumps({"rec_id": "r_2", "items": [{"id": {}, "title": ["<b>a</b>"], "url": 5},
                                                              {"id": "s1", "title": None, "url": "https://x.example/"},
                                                              {"id": "s2", "title": 7, "url": ["javascript:alert(1)"]}]}), "application/json"),
    ("array", 200, "[1, 2, 3]", "application/json"),
    ("number", 200, "12345", "application/json"),
    ("empty", 200, "", "application/json"),
    ("binary", 200, bytes(range(256)) * 4, "application/octet-stream"),
    ("deep", 200, "[" * 100_000 + "]" * 100_000, "application/json"),
    ("too-many-requests", 429, '{"error": {"code": "rate_limited", "message": "slow down"}}', "application/json"),
]


@pytest.mark.parametrize("name, status, body, content_type", GARBAGE, ids=[g[0] for g in GARBAGE])
def test_garbage_from_the_api_keeps_the_shop_page_intact(hostile, shop, open_page, name, status, body, content_type):
    tab = open_page()
    answered = []
    tab.page.route("**/api/v1/recommendations**", lambda route: (answered.append(1), route.fulfill(
        status=status, body=body, content_type=content_type, headers={"Access-Control-Allow-Origin": "*"})))
    tab.page.goto(shop.page(f"/garbage-{name}", slot_html() + shop.snippet(key=hostile["key"]) + OWN_SCRIPT))
    tab.until(lambda: answered, "the garbage answer")
    tab.page.wait_for_timeout(400)
    dom = tab.slot_dom()
    assert not dom["shadow"] and dom["fallback"] and dom["items"] == []
    assert tab.page.locator("#own").text_content() == "shop script ran"
    assert tab.page.evaluate("typeof personalize") == "function"
    tab.assert_untouched()


def test_slow_and_down_apis_leave_the_page_working(hostile, shop, open_page):
    slow = SlowApi(3.0, {"rec_id": "r_late", "items": [{"id": "s1", "title": "Late", "url": f"{shop.url}/product/s1"}]})
    try:
        pages = [(f"http://127.0.0.1:{closed_port()}", "down"), (slow.url, "slow")]
        for api, name in pages:
            tab = open_page()
            tab.page.goto(shop.page(f"/{name}", slot_html() + shop.snippet(key=hostile["key"], api=api) + OWN_SCRIPT))
            tab.page.evaluate("personalize('track', 'product_added', {product_id: 's1', quantity: 1})")
            tab.flush()
            tab.page.wait_for_timeout(3300 if name == "slow" else 1200)  # past the 2 s budget and the late answer
            dom = tab.slot_dom()
            assert not dom["shadow"] and dom["fallback"] and dom["items"] == [], name
            assert tab.page.locator("#own").text_content() == "shop script ran"
            tab.assert_untouched()
    finally:
        slow.close()


@pytest.mark.parametrize("blocked", ["script", "api", "both"])
def test_an_ad_blocker_blocking_the_widget_or_its_api_breaks_nothing(hostile, shop, open_page, blocked):
    tab = open_page()
    if blocked in ("script", "both"):
        tab.page.route("**/static/widget.js", lambda route: route.abort("blockedbyclient"))
    if blocked in ("api", "both"):
        tab.page.route("**/api/v1/**", lambda route: route.abort("blockedbyclient"))
    stub = ("<script>window.personalize=window.personalize||function(){(personalize.q=personalize.q||[]).push(arguments)};"
            "personalize('view', {product_id: 's1'});</script>")
    late = "<script>personalize('track', 'product_added', {product_id: 's1'}); document.getElementById('own').textContent = 'shop script ran';</script>"
    tab.page.goto(shop.page(f"/blocked-{blocked}", slot_html() + stub + shop.snippet(key=hostile["key"]) + late))
    tab.page.wait_for_load_state("load")
    tab.flush()
    tab.page.wait_for_timeout(500)
    dom = tab.slot_dom()
    assert not dom["shadow"] and dom["fallback"] and dom["items"] == []
    assert tab.page.locator("#own").text_content() == "shop script ran"
    loaded = tab.page.evaluate("!!(window.personalize && window.personalize.loaded)")
    assert loaded == (blocked == "api")
    tab.assert_untouched()


# ---------------------------------------------------------------- a strict Content-Security-Policy


def test_a_strict_csp_page_gets_recommendations_events_and_no_violation(hostile, reco, reco_app, shop, open_page):
    from sqlalchemy import select

    from personalize.db import db
    from personalize.models import Event

    csp = (f"default-src 'none'; script-src {reco.url}/static/widget.js; connect-src {reco.url}; "
           f"img-src {shop.url}; style-src 'none'; base-uri 'none'; form-action 'none'; frame-src 'none'")
    tab = open_page()
    body = ('<div data-personalize-slot="home" data-limit="40"><p id="fallback">Bestsellers</p></div>'
            + shop.snippet(key=hostile["key"], product_id="m1"))
    tab.page.goto(shop.page("/strict-csp", body, headers={"Content-Security-Policy": csp}))
    shown = tab.rendered()[0]["items"]
    assert len(shown) > 10
    tab.page.wait_for_timeout(300)
    visitor = tab.page.evaluate("localStorage.getItem('pz_vid')")
    tab.flush()

    def stored():
        with reco_app.app_context():
            return db.session.scalars(select(Event.type).where(Event.site_id == hostile["site_id"], Event.visitor == visitor)).all()

    types = wait_for(lambda: (t := stored()) and len(t) >= 3 and t, message="the events sent under the policy")
    assert sorted(types) == ["page_viewed", "product_viewed", "rec_impression"]
    assert tab.page.evaluate("window.__csp") == []
    assert [c for c in tab.console if "Content Security Policy" in c or c.startswith("error")] == []
    tab.assert_untouched()


# ---------------------------------------------------------------- consent


CLICKS_STAY = "<script>document.addEventListener('click', function (e) { e.preventDefault(); }, true);</script>"


def test_consent_not_given_or_refused_sends_no_event_and_stores_nothing(hostile, reco, shop, open_page):
    tab = open_page()
    url = shop.page("/no-consent", slot_html() + CLICKS_STAY + shop.snippet(key=hostile["key"], consent="required", product_id="m0"))
    visitors = []
    for _ in range(2):  # a reload too: nothing carries over
        tab.page.goto(url)
        tab.rendered()
        tab.page.evaluate("""() => {
            personalize('view', {product_id: 'm1'});
            personalize('track', 'product_added', {product_id: 'm1', quantity: 2, price: 3});
            personalize('track', 'order_completed', {order_id: 'o1', items: [{product_id: 'm1', quantity: 1, price: 3}]});
            personalize('identify', {email: 'someone@example.com'});
            personalize('page');
        }""")
        tab.page.locator("[data-personalize-item]").first.click()  # rec_clicked without consent
        tab.page.evaluate("history.pushState({}, '', '/no-consent?next=1')")  # a route change
        tab.flush()
        visitors += [u.split("visitor=")[1].split("&")[0] for u in tab.sent("/api/v1/recommendations") if "visitor=" in u]
    tab.page.evaluate("personalize('consent', false)")  # refused outright
    tab.page.evaluate("personalize('track', 'product_added', {product_id: 'm2'})")
    tab.flush()

    assert tab.sent("/api/v1/events") == []
    assert tab.context.cookies() == []
    assert tab.page.evaluate("Object.assign({}, localStorage)") == {}
    assert tab.page.evaluate("Object.assign({}, sessionStorage)") == {}
    # Recommendations were fetched with a throwaway id: a new one on every page, never stored.
    assert len(visitors) >= 3 and len(set(visitors[:1] + visitors[-1:])) == 2
    tab.assert_untouched()

    # The counter works: once consent is given, the page's events go out.
    tab.page.evaluate("personalize('consent', true)")
    tab.flush()
    tab.until(lambda: tab.sent("/api/v1/events"), "events after consent")
    assert set(tab.page.evaluate("Object.keys(localStorage)")) <= {"pz_vid", "pz_outbox", "pz_recs", "pz_optout"}
