"""The rendered row, as assistive technology meets it, in Chromium.

Written checks rather than a bundled audit library: the roles and accessible names (computed
by Playwright the way browsers expose them, through the shadow root), the description of each
item, keyboard focus being visible, and the contrast of the text the widget colours itself.
"""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from .support import slot

pytestmark = pytest.mark.browser


def open_row(shop, tab, **slot_data) -> list[str]:
    tab.page.goto(shop.page(f"/a11y-{uuid.uuid4().hex[:6]}", "<a href='#top' id='before'>Shop</a>" + slot(**slot_data) + shop.snippet()))
    return tab.rendered()[0]["items"]


def test_the_row_is_a_labelled_list_of_links_named_by_title_and_price(reco_site, shop, tab):
    shown = open_row(shop, tab)
    row = tab.page.get_by_role("list", name="Recommended for you")
    expect(row).to_have_count(1)
    expect(row.get_by_role("listitem")).to_have_count(len(shown))
    links = row.get_by_role("link")
    expect(links).to_have_count(len(shown))
    first = links.first
    title = first.locator(".pz-title").text_content()
    price = first.locator(".pz-price").text_content()
    expect(first).to_have_accessible_name(f"{title}, {price}")
    assert re.fullmatch(r"€\d+\.\d\d", price), price
    reason = first.locator(".pz-reason").text_content()
    assert reason
    expect(first).to_have_accessible_description(reason)


def test_a_slot_title_names_the_list(reco_site, shop, tab):
    open_row(shop, tab, title="Picked for you")
    expect(tab.page.get_by_role("heading", name="Picked for you")).to_have_count(1)
    expect(tab.page.get_by_role("list", name="Picked for you")).to_have_count(1)


def test_keyboard_focus_on_an_item_is_visible(reco_site, shop, tab):
    open_row(shop, tab)
    tab.page.focus("#before")
    tab.page.keyboard.press("Tab")
    focused = tab.page.evaluate("""() => {
        const host = document.activeElement, el = host.shadowRoot ? host.shadowRoot.activeElement : host;
        const cs = getComputedStyle(el);
        return {item: el && el.dataset.personalizeItem, style: cs.outlineStyle, width: cs.outlineWidth, visible: el.matches(':focus-visible')};
    }""")
    assert focused["item"], "Tab moves into the row"
    assert focused["visible"] and focused["style"] == "solid" and focused["width"] == "2px", focused


CONTRAST = """(sel) => {
  const host = document.querySelector('[data-personalize-slot]'), el = host.shadowRoot.querySelector(sel);
  const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 4).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); })
    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  let bg = null;
  for (let n = el; n && !bg; n = n.parentElement || (n.getRootNode() && n.getRootNode().host)) {
    const c = rgb(getComputedStyle(n).backgroundColor);
    if (c.length < 4 || c[3] > 0) bg = c;
  }
  const a = lum(rgb(getComputedStyle(el).color)), b = lum(bg || [255, 255, 255]);
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


@pytest.mark.parametrize("part", [".pz-reason", ".pz-title", ".pz-price"])
def test_text_the_widget_colours_meets_wcag_aa_contrast(reco_site, shop, tab, part):
    open_row(shop, tab)
    ratio = tab.page.evaluate(CONTRAST, part)
    assert ratio >= 4.5, f"{part}: contrast {ratio:.2f}:1 is below 4.5:1"


def test_images_are_decorative_so_the_name_is_not_read_twice(reco_site, shop, tab):
    open_row(shop, tab)
    alts = tab.page.locator("[data-personalize-slot] img.pz-image").evaluate_all("els => els.map(e => e.getAttribute('alt'))")
    assert alts and set(alts) == {""}
