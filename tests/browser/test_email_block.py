"""The open-time email block as a person sees it: an email whose pictures are drawn by the server
when it is opened, and whose click lands on the product shown, identified and credited."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from .support import wait_for

pytestmark = pytest.mark.browser


def test_an_opened_email_shows_the_persons_cards_and_a_click_lands_on_the_product_shown(reco_app, reco, reco_site, shop, tab, stored):
    from personalize.profiles import ingest_events
    from personalize.profiles.identity import EMAIL, VISITOR, lookup
    from personalize.recommend.channels import block_urls, shown_list
    from personalize.sites import get_site

    with reco_app.app_context():
        site = get_site(reco_site["id"])
        ingest_events(site, [{"id": "block-bea-id", "type": "identify", "visitor": "block-bea-laptop", "email": "bea.block@example.com"}])
        bea = lookup(site.id, EMAIL, ["bea.block@example.com"])["bea.block@example.com"]
        urls = block_urls(reco.url, site.id, bea)
    cells = "".join(f'<td><a id="rec{n}" href="{urls.click(n)}"><img alt="Picked for you" width="224" src="{urls.card(n, 4)}"></a></td>'
                    for n in range(1, 5))
    email = shop.page("/webmail/message-1", f"<p>Hi Bea, picked for you:</p><table><tr>{cells}</tr></table>", title="Your inbox")
    tab.page.goto(email)
    # opened: four pictures, drawn by the server for Bea (224 × 288 each)
    sizes = wait_for(lambda: (s := tab.page.evaluate("[...document.images].map(i => i.complete && [i.naturalWidth, i.naturalHeight])"))
                     and all(s) and s, message="the email's pictures")
    assert sizes == [[224, 288]] * 4
    with reco_app.app_context():
        row = shown_list(reco_site["id"], bea, "block")
        shown, rec_id = list(row.items), row.rec_id
    assert len(shown) == 4
    # clicked: the product at position 2 of the pictures, on the shop's page
    tab.page.click("#rec2")
    tab.page.wait_for_url(f"{shop.url}/product/**")
    assert urlsplit(tab.page.evaluate("location.href")).path == f"/product/{shown[1]}"
    here = tab.page.evaluate("location.href")
    assert "pz_token" not in here and "pz_rec" not in here and parse_qs(urlsplit(here).query)["utm_medium"] == ["email"]
    visitor = tab.visitor()
    clicked = wait_for(lambda: stored(visitor=visitor, type="rec_clicked"), message="the email's click")
    assert (clicked[0]["rec_id"], clicked[0]["slot"], clicked[0]["product_id"]) == (rec_id, "email", shown[1])

    def merged():
        with reco_app.app_context():
            return lookup(reco_site["id"], VISITOR, [visitor]).get(visitor) == bea

    wait_for(merged, message="the sealed token merging this browser into Bea")
    assert not tab.errors
