"""Reasons and the row's name in the page's language: the server sends a reason code with its
arguments next to the English text, and the widget words it in German, French or Spanish (from
<html lang> or data-lang), or in the shop's own words (data-text)."""

from __future__ import annotations

import json
import re
import uuid

import pytest
import requests
from playwright.sync_api import expect

from .support import slot

pytestmark = pytest.mark.browser

GERMAN = {"Schon gekauft", "Im Warenkorb", "Zuletzt angesehen", "Beliebt bei Kunden wie Ihnen", "Gerade beliebt", "Im Trend",
          "Regelmäßig gekauft"}
GERMAN_WITH_TITLE = re.compile(r"(Oft gekauft mit|Passt zu|Ähnlich wie) .+|Weil Sie .+ ansahen")


def serve(shop, body: str, lang: str) -> str:
    path = f"/lang-{uuid.uuid4().hex[:6]}"
    shop.pages[path] = (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>Laden</title></head><body>{body}</body></html>', {})
    return shop.url + path


def reasons(tab) -> list[str]:
    return tab.page.locator("[data-personalize-slot] .pz-reason").all_text_contents()


def test_a_german_page_gets_german_reasons_and_a_german_list_name(reco_site, shop, tab):
    tab.page.goto(serve(shop, slot() + shop.snippet(), "de-DE"))
    tab.rendered()
    shown = reasons(tab)
    assert shown, "the row has reasons"
    for text in shown:
        assert text in GERMAN or GERMAN_WITH_TITLE.fullmatch(text), text
    expect(tab.page.get_by_role("list", name="Für Sie")).to_have_count(1)


def test_the_server_sends_a_code_and_its_arguments_next_to_the_english_reason(reco_app, reco_site, shop):
    r = requests.get(f"{shop.reco_url}/api/v1/recommendations", params={"key": reco_site["public_key"], "visitor": "someone-new", "slot": "home"},
                     headers={"Origin": shop.url}, timeout=10)
    items = r.json()["items"]
    assert items
    from personalize.reasons import REASONS

    for it in items:
        assert it["reason_code"] in REASONS, it
        english = REASONS[it["reason_code"]].format(**it["reason_args"])
        assert english == it["reason"], "the code and its arguments say what the text says"


def test_data_lang_wins_and_the_shop_can_reword_any_reason(reco_site, shop, tab):
    own = json.dumps({"popular": "Très demandé", "like_you": "Très demandé", "list": "Nos idées"}).replace('"', "&quot;")
    tab.page.goto(serve(shop, slot(lang="fr") + shop.snippet(text=own), "de"))
    tab.rendered()
    shown = reasons(tab)
    assert shown and not set(shown) & GERMAN, shown
    french = {"Déjà acheté", "Dans votre panier", "Vu récemment", "Très demandé", "Tendance", "Acheté régulièrement"}
    assert all(t in french or re.match(r"(Souvent acheté avec|Va avec|Vous avez vu|Proche de) ", t) for t in shown), shown
    expect(tab.page.get_by_role("list", name="Nos idées")).to_have_count(1)


def test_an_english_page_keeps_the_servers_words(reco_site, shop, tab):
    tab.page.goto(serve(shop, slot() + shop.snippet(), "en"))
    tab.rendered()
    from personalize.reasons import REASONS

    english = [t.split("{")[0] for t in REASONS.values()]
    assert all(any(t.startswith(e) for e in english) for t in reasons(tab)), reasons(tab)
    expect(tab.page.get_by_role("list", name="Recommended for you")).to_have_count(1)
