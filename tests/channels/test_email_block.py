"""The open-time email block: sealed per-person addresses, a PNG of the person's list, clicks with attribution."""

from __future__ import annotations

import base64
import io
import time
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from personalize.db import db
from personalize.profiles.contact_tokens import seal, unseal
from personalize.profiles.trust import read_site_token, site_token


def urls(trained, profile_id, now=None):
    from personalize.recommend.channels import block_urls

    return block_urls("", trained.id, profile_id, now)


def path(url: str) -> str:
    return urlsplit(url).path


def test_a_token_names_the_person_and_reveals_nothing(ctx, trained, people):
    token = site_token(trained.id, people["runner"], 3600)
    assert read_site_token(trained.id, token).profile_id == people["runner"]
    raw = base64.urlsafe_b64decode(token[3:] + "=" * (-len(token[3:]) % 4))
    for secret_part in (b"ana", b"example", b"c-ana", people["runner"].to_bytes(8, "big"), people["runner"].to_bytes(4, "big")):
        assert secret_part not in raw and secret_part not in token.encode()
    # nothing shared between the tokens of two people but the prefix: no readable field
    other = site_token(trained.id, people["tea"], 3600)
    assert sum(a == b for a, b in zip(token[3:], other[3:], strict=False)) < 8
    assert token == site_token(trained.id, people["runner"], 3600), "the same person the same day: the same token"
    assert token != site_token(trained.id, people["tea"], 3600)
    # altered, of another site, or expired: refused
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert read_site_token(trained.id, flipped) is None
    assert read_site_token(trained.id + 1, token) is None
    assert read_site_token(trained.id, token, now=time.time() + 3 * 86400) is None
    # a key that is not the site's cannot make one
    assert unseal("ss_other", trained.id, token) is None
    assert read_site_token(trained.id, seal("ss_other", trained.id, "email", people["runner"], int(time.time()) + 999)) is None


def test_rotating_the_signing_secret_voids_every_token(ctx, trained, people):
    from personalize.profiles.trust import rotate_signing_secret

    token = site_token(trained.id, people["runner"], 3600)
    rotate_signing_secret(trained.id)
    assert read_site_token(trained.id, token) is None


def test_the_image_is_the_persons_list_as_a_grid_of_cards(client, trained, people):
    from personalize.recommend.channels import block_cache, shown_list

    block = urls(trained, people["runner"])
    r = client.get(path(block.image))
    assert r.status_code == 200 and r.mimetype == "image/png"
    with Image.open(io.BytesIO(r.data)) as img:
        assert img.size == (2 * 200 + 3 * 12, 2 * (200 + 64) + 3 * 12)  # 4 cards, 2 columns
    row = shown_list(trained.id, people["runner"], "block")
    assert len(row.items) == 4 and row.items[0].startswith("run-") and row.rec_id.startswith("r_")
    hits = block_cache().hits
    again = client.get(path(block.image))
    assert again.data == r.data and block_cache().hits == hits + 1, "the same list is drawn once"
    assert client.get(path(block.image), headers={"If-None-Match": again.headers["ETag"]}).status_code == 304
    wide = client.get(path(block.image), query_string={"n": 3, "columns": 3})
    with Image.open(io.BytesIO(wide.data)) as img:
        assert img.size == (3 * 200 + 4 * 12, 200 + 64 + 2 * 12)
    card = client.get(path(block.card(2)))
    with Image.open(io.BytesIO(card.data)) as img:
        assert img.size == (200 + 2 * 12, 200 + 64 + 2 * 12)
    tea = client.get(path(urls(trained, people["tea"]).image))
    assert tea.status_code == 200 and tea.data != r.data


def test_a_new_event_is_a_new_list_version(client, trained, people):
    from personalize.recommend.channels import shown_list

    block = urls(trained, people["tea"])
    first = client.get(path(block.image))
    before = shown_list(trained.id, people["tea"], "block")
    ids_before, rec_before = list(before.items), before.rec_id
    for n in range(6):
        client.post("/api/v1/events", json={"key": trained.public_key, "events": [
            {"id": f"tea4-run-{n}", "type": "product_viewed", "visitor": "tea-4", "product_id": ["run-shoe", "run-cap", "run-gel"][n % 3]}]})
    second = client.get(path(block.image))
    db.session.expire_all()
    after = shown_list(trained.id, people["tea"], "block")
    assert after.items != ids_before and after.rec_id != rec_before
    assert second.headers["ETag"] != first.headers["ETag"]


def test_bad_tokens_get_an_empty_picture_and_no_redirect(client, trained, people):
    block = urls(trained, people["runner"])
    expired = urls(trained, people["runner"], now=time.time() - 200 * 86400)
    for address in (expired.image, block.image.replace(f"/recs/{trained.id}/", f"/recs/{trained.id + 5}/"),
                    block.image[:-8] + "AAAA.png", f"/email/recs/{trained.id}/pz1short.png"):
        r = client.get(path(address))
        assert r.status_code == 404 and r.mimetype == "image/png" and len(r.data) < 100, address
    assert client.get(path(expired.click(1))).status_code == 404
    assert client.get(path(block.click(1)) + "x").status_code == 404
    assert client.get(path(block.prefix) + "/0").status_code == 404
    r = client.get(path(block.image), query_string={"n": 99})
    assert r.status_code == 400 and r.json["error"]["field"] == "n"


def test_a_click_opens_the_product_shown_there_with_attribution_and_a_sealed_token(client, trained, people):
    from personalize.profiles.trust import read_token
    from personalize.recommend.channels import shown_list

    block = urls(trained, people["runner"])
    client.get(path(block.image))
    row = shown_list(trained.id, people["runner"], "block")
    for position in (1, 3):
        r = client.get(path(block.click(position)))
        assert r.status_code == 302, r.data
        target = urlsplit(r.headers["Location"])
        assert (target.scheme, target.netloc, target.path) == ("https", "shop.example", f"/p/{row.items[position - 1]}")
        query = parse_qs(target.query)
        assert query["pz_rec"] == [row.rec_id] and query["utm_medium"] == ["email"]
        token = query["pz_token"][0]
        assert "ana" not in token and read_token(trained.id, token).email == "ana@example.com"
    # beyond the list: the shop itself
    r = client.get(path(block.click(9)))
    assert r.status_code == 302 and r.headers["Location"] == "https://shop.example"


def test_a_click_before_the_image_was_loaded_uses_the_list_as_it_is(client, trained, people):
    from personalize.recommend.channels import shown_list

    block = urls(trained, people["tea"])
    r = client.get(path(block.click(1)))
    assert r.status_code == 302
    row = shown_list(trained.id, people["tea"], "block")
    assert urlsplit(r.headers["Location"]).path == f"/p/{row.items[0]}"


def test_landing_with_the_click_token_proves_who_the_visitor_is(client, trained, people):
    from personalize.profiles.identity import lookup

    block = urls(trained, people["runner"])
    r = client.get(path(block.click(1)))
    token = parse_qs(urlsplit(r.headers["Location"]).query)["pz_token"][0]
    r = client.post("/api/v1/events", json={"key": trained.public_key, "events": [
        {"id": "land-1", "type": "identify", "visitor": "phone-visitor", "token": token}]})
    assert r.status_code == 202
    assert lookup(trained.id, "visitor", ["phone-visitor"])["phone-visitor"] == people["runner"]


def test_an_erased_person_has_no_block(client, trained, people):
    from personalize.profiles.privacy import erase_profile
    from personalize.recommend.channels import ContactList, block_cache

    block = urls(trained, people["runner"])
    client.get(path(block.image))
    assert any(k[1] == people["runner"] for k in block_cache()._entries)
    erase_profile(trained.id, people["runner"])
    assert not any(k[1] == people["runner"] for k in block_cache()._entries), "their pictures leave the memory too"
    assert db.session.query(ContactList).filter_by(profile_id=people["runner"]).count() == 0
    assert client.get(path(block.image)).status_code == 404
    assert client.get(path(block.click(1))).status_code == 404
