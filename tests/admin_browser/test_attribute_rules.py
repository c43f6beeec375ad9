"""Rules by attribute in a real browser, at 1366 and 390 px: the product picker (search with
thumbnails, keyboard only), the rule form with catalogue suggestions, an error that names and
marks its field, and the saved rule changing what the shop serves."""

from __future__ import annotations

import pytest
import requests

from personalize.catalog import get_product
from personalize.db import db
from personalize.sites import get_site

from .conftest import send_events, sign_in, wait_for_text

pytestmark = pytest.mark.browser

PIXEL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def no_sideways_scroll(page) -> None:
    page.wait_for_load_state("load")  # the stylesheets apply (after a submit the elements can be read before)
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.querySelector('main').scrollWidth") <= width
    for box in page.locator("main input:visible, main select:visible, main textarea:visible, main button:visible").all():
        b = box.bounding_box()
        assert b["x"] >= 0 and b["x"] + b["width"] <= width + 1, box.evaluate("e => e.outerHTML.slice(0, 80)")


@pytest.mark.parametrize("width", [1366, 390])
def test_pick_products_and_build_a_rule_with_the_keyboard(admin_page, live_server, owner, site, shoot, width):
    page, base = admin_page, live_server.url
    get_product(site.id, "run-shoe").image = PIXEL
    db.session.commit()
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, base, *owner)
    page.goto(f"{base}/admin/sites/{site.id}/recommendations/rules")
    assert "No rule yet" in page.inner_text("#rule-list")
    no_sideways_scroll(page)

    page.fill("#rule-name", "Tea for runners")
    page.select_option("#rule-action", "show")
    assert page.locator("#rule-count").is_visible() and not page.locator("#rule-factor").is_visible()
    page.fill("#rule-count", "2")
    # the category box suggests the shop's own categories
    assert page.locator("#items-value").get_attribute("list") == "values-category"
    assert page.locator("#values-category option").evaluate_all("os => os.map(o => o.value)") == ["running", "tea"]
    page.fill("#items-value", "tea")
    assert not page.locator("#when-field").is_visible()  # "Everyone": no condition to fill
    page.select_option("#when-did", "bought")
    page.select_option("#when-field", "id")
    assert not page.locator("#when-value").is_visible()
    # the product picker: type, arrows, Enter; a thumbnail for each result
    search = page.get_by_role("combobox", name="Search products to add: Condition: chosen products")
    search.focus()
    page.keyboard.type("shoe")
    options = page.locator("[role=listbox]:visible [role=option]")
    options.first.wait_for()
    assert options.count() == 1 and "Trail running shoe" in options.first.inner_text()
    assert options.first.locator("img.thumb").evaluate("i => i.naturalWidth") == 1
    assert options.first.get_attribute("aria-selected") == "true"
    page.keyboard.press("Enter")
    chosen = page.locator("[aria-label='Chosen products']:visible li")
    chosen.first.wait_for()
    assert chosen.count() == 1 and chosen.first.get_attribute("data-product") == "run-shoe"
    assert page.evaluate("document.activeElement.getAttribute('role')") == "combobox"  # the focus stays to add more
    assert page.locator("#when-ids").input_value() == "run-shoe"
    no_sideways_scroll(page)
    shoot(page, f"attribute-rule-form-{width}", "#rule-form")
    page.click("#save-rule")
    page.wait_for_url("**/recommendations/rules")
    assert "Who bought products run-shoe: show 2 of category is tea" in page.inner_text("#rule-list")
    assert "matches 4 products" in page.inner_text("#rule-list")

    # the shop serves it: a visitor who buys the shoe gets tea right after
    send_events(base, site.public_key, [{"id": "b1", "type": "order_completed", "visitor": "buyer", "order_id": "ob1",
                                         "items": [{"product_id": "run-shoe", "quantity": 1, "price": 120.0}]}])
    body = requests.get(f"{base}/api/v1/recommendations", params={"key": site.public_key, "visitor": "buyer", "limit": 4}, timeout=10).json()
    assert [i["id"][:3] for i in body["items"][:2]] == ["tea", "tea"]
    assert body["items"][0]["reason"] == "Goes well with Trail running shoe"

    # an error names the field, marks it and puts the focus there
    page.click("#rule-list a:has-text('Edit')")
    page.fill("#rule-starts", "2026-12-02T00:00")
    page.fill("#rule-ends", "2026-12-01T00:00")
    page.click("#save-rule")
    wait_for_text(page, "#rule-error", "Ends: must be after the start")
    page.wait_for_load_state("load")  # the scripts have run
    assert page.evaluate("document.activeElement.id") == "rule-ends"
    assert page.locator("#rule-ends").get_attribute("aria-invalid") == "true"
    assert page.locator("#when-ids").input_value() == "run-shoe"  # nothing typed is lost
    no_sideways_scroll(page)
    # the refused form comes back as a 400, which the console reports; nothing else may go wrong
    assert not [e for e in page.errors if "status of 400" not in e], page.errors


def test_pin_with_the_picker_on_the_recommendations_page(admin_page, live_server, owner, site):
    page, base = admin_page, live_server.url
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, base, *owner)
    page.goto(f"{base}/admin/sites/{site.id}/recommendations")
    assert not page.locator("#pin").is_visible()  # the id box gives way to the picker
    page.get_by_label("Search products to add: Pin (shown first, in this order; one id per line)").click()
    page.keyboard.type("tea")
    page.locator("[role=listbox]:visible [role=option]").first.wait_for()
    page.keyboard.press("ArrowDown")  # the second result: tea cups, by title
    picked = page.locator("[role=listbox]:visible [aria-selected=true]").get_attribute("data-product")
    page.keyboard.press("Enter")
    page.locator("#picked-1 li").first.wait_for()
    page.locator("#picked-1 li button.remove").focus()
    assert page.locator("#picked-1 li button.remove").get_attribute("aria-label").startswith("Remove ")
    page.click("#save-rules")
    page.wait_for_url("**/recommendations")
    db.session.expire_all()
    assert get_site(site.id).settings["rules"]["pin"] == [picked]
    assert page.locator("#picked-1 li").first.get_attribute("data-product") == picked  # shown again after saving
    no_sideways_scroll(page)
    assert not page.errors, page.errors
