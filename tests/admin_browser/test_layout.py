"""Every admin page fits a phone (390 px) and a laptop (1366 px): nothing sticks out sideways, and
the navigation and every control can be reached without scrolling the page sideways.

The pages are those of a built demo (segments, profiles, journeys, a dashboard with traffic) plus a
connection, so each page shows realistic content rather than its empty state.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from sqlalchemy import select

from personalize.app import create_app
from personalize.testing import app_config, fresh_database, serve_in_thread

PHONE, LAPTOP = 390, 1366

# What sticks out of the document or of <main>, and the controls a person cannot reach: a control
# counts as reachable when it lies inside the viewport's width, or inside a box that scrolls sideways.
MEASURE = """() => {
  const width = document.documentElement.clientWidth;
  const main = document.querySelector('main').getBoundingClientRect();
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  const visible = el => { const b = el.getBoundingClientRect(); const s = getComputedStyle(el); return b.width > 0 && b.height > 0 && s.visibility !== 'hidden'; };
  const scroller = el => { for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) { const o = getComputedStyle(p).overflowX; if ((o === 'auto' || o === 'scroll') && p.scrollWidth > p.clientWidth) return p; } return null; };
  const beyondMain = [];
  for (const el of document.querySelectorAll('main *')) {
    if (!visible(el) || scroller(el)) continue;
    const b = el.getBoundingClientRect();
    if (b.right > main.right + 1 || b.left < main.left - 1) beyondMain.push(name(el) + ' ' + Math.round(b.left) + '..' + Math.round(b.right));
  }
  const unreachable = [];
  for (const el of document.querySelectorAll('header a, header button, nav a, main a, main button, main input:not([type=hidden]), main select, main textarea, main summary')) {
    if (!visible(el) || scroller(el)) continue;
    const b = el.getBoundingClientRect();
    if (b.left < -1 || b.right > width + 1) unreachable.push(name(el) + ' ' + Math.round(b.left) + '..' + Math.round(b.right));
  }
  const squeezed = [];  // a table's caption runs across its table, not one word a line beside it
  for (const cap of document.querySelectorAll('main table > caption')) {
    if (!visible(cap)) continue;
    const c = cap.getBoundingClientRect(), t = cap.parentElement.getBoundingClientRect();
    if (c.width < 0.9 * t.width) squeezed.push(name(cap.parentElement) + ' caption ' + Math.round(c.width) + ' of ' + Math.round(t.width) + ' px');
  }
  return {scrollWidth: document.documentElement.scrollWidth, width: width, beyondMain: beyondMain.slice(0, 10), unreachable: unreachable.slice(0, 10),
          squeezed: squeezed,
          nav: Array.from(document.querySelectorAll('header nav a')).filter(visible).length};
}"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The small demo built into a fresh database, with a files connection, served over HTTP."""
    from personalize.db import db
    from personalize.demo.setup import build_demo
    from personalize.demo.views import bp
    from personalize.models import Profile
    from personalize.sync.connections import save_connection

    with ExitStack() as stack:
        folder = tmp_path_factory.mktemp("layout")
        app = create_app(app_config(folder, stack.enter_context(fresh_database(folder))))
        app.register_blueprint(bp)
        info = build_demo(app, n_visitors=400, origin="http://shop.test:8080")
        with app.app_context():
            site_id = info["site_id"]
            save_connection(site_id, "files", {"folder": ""}, name="files", schedule_minutes=60)
            info["profile_id"] = db.session.scalars(
                select(Profile.id).where(Profile.site_id == site_id, Profile.email.is_not(None)).order_by(Profile.id).limit(1)
            ).one()
        server = stack.enter_context(serve_in_thread(app))
        info["app"] = app
        yield server.url, info
        with app.app_context():
            db.engine.dispose()


SITE_PAGES = [
    "", "/dashboard", "/recommendations", "/connectors", "/connectors/new/hubspot", "/connectors/files/settings",
    "/segments", "/segments/new", "/segments/big-spenders", "/segments/big-spenders/edit",
    "/profiles", "/profiles/{profile_id}", "/journeys", "/journeys/cart-abandonment", "/email-settings",
]
SERVER_PAGES = ["/admin/", "/admin/team", "/admin/plugins", "/admin/settings", "/admin/account"]
PAGES = SERVER_PAGES + ["/admin/sites/{site_id}" + p for p in SITE_PAGES]


@pytest.fixture(scope="module", params=[PHONE, LAPTOP], ids=["phone", "laptop"])
def signed_in(request, browser, demo):
    """A page signed in as the demo's owner, at the width of a phone or a laptop."""
    base, info = demo
    context = browser.new_context(viewport={"width": request.param, "height": 800})
    page = context.new_page()
    page.set_default_timeout(8000)
    page.goto(base + "/admin/login")
    page.fill("#email", info["admin_email"])
    page.fill("#password", info["admin_password"])
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/")
    yield page, base, info
    context.close()


def check_fits(page) -> None:
    page.wait_for_load_state("load")  # the stylesheets apply (after a click the elements can be read before)
    m = page.evaluate(MEASURE)
    assert m["scrollWidth"] <= m["width"], f"the page is {m['scrollWidth']} px wide in a {m['width']} px window"
    assert not m["beyondMain"], f"sticking out of the page's column: {m['beyondMain']}"
    assert not m["unreachable"], f"controls out of reach: {m['unreachable']}"
    assert not m["squeezed"], f"captions narrower than their tables: {m['squeezed']}"


@pytest.mark.browser
@pytest.mark.parametrize("path", PAGES)
def test_every_admin_page_fits_the_window(signed_in, path):
    page, base, info = signed_in
    url = base + path.format(site_id=info["site_id"], profile_id=info["profile_id"])
    response = page.goto(url)
    assert response.status == 200, url
    check_fits(page)
    if path.startswith("/admin/sites/"):
        # every tab of the site reachable and clickable at this width
        tabs = page.locator("nav.tabs a")
        assert tabs.count() >= 7
        for i in range(tabs.count()):
            assert tabs.nth(i).is_visible()
    assert page.locator("header nav a").count() >= 4
    page.locator("header nav a", has_text="Account").click()
    page.wait_for_url("**/admin/account")


@pytest.mark.browser
@pytest.mark.parametrize("path", ["/admin/login", "/admin/setup"])
def test_signed_out_pages_fit_a_phone(browser, demo, path):
    base, _info = demo
    context = browser.new_context(viewport={"width": PHONE, "height": 800})
    try:
        page = context.new_page()
        page.goto(base + path)
        check_fits(page)
    finally:
        context.close()


@pytest.mark.browser
def test_the_model_check_table_reads_on_a_phone(browser, demo, tmp_path):
    """The self-check's table on the Recommendations page: at phone width each strategy is a block
    of labelled figures, under a caption that runs across the page."""
    from personalize.db import db
    from personalize.models import ModelVersion
    from personalize.recommend.engine import Recommender
    from personalize.recommend.synthetic import generate

    base, info = demo
    shop = generate(n_items=300, n_users=500, n_interactions=20_000, seed=4)
    model = Recommender.fit(shop.log, shop.items)
    assert model.check and model.check["recall"]["all"], "the shop is large enough to be checked"
    path = tmp_path / "checked.model"
    model.save(path)
    with info["app"].app_context():
        db.session.add(ModelVersion(site_id=info["site_id"], path=str(path), n_items=300, n_users=500, n_interactions=len(shop.log),
                                    fit_seconds=3.0, active=True))
        db.session.commit()
    context = browser.new_context(viewport={"width": PHONE, "height": 800})
    try:
        page = context.new_page()
        page.goto(base + "/admin/login")
        page.fill("#email", info["admin_email"])
        page.fill("#password", info["admin_password"])
        page.click("button[type=submit]")
        page.wait_for_url("**/admin/")
        page.goto(f"{base}/admin/sites/{info['site_id']}/recommendations")
        assert page.locator("#model table.check caption").is_visible()
        check_fits(page)
        first = page.locator("#model table.check tbody tr").first
        assert first.locator("td").nth(1).get_attribute("data-label") == "All purchases"
    finally:
        context.close()
