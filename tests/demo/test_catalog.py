"""The demo catalogue: deterministic, complete and priced like a real shop."""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict

from personalize.demo.catalog import CATEGORIES, COMPLEMENTS, demo_products


def test_same_seed_gives_the_same_catalogue_and_another_seed_another():
    assert demo_products(7) == demo_products(7)
    other = demo_products(8)
    assert [p.id for p in other] == [p.id for p in demo_products(7)]
    assert [p.title for p in other] != [p.title for p in demo_products(7)]


def test_ids_titles_urls_and_images_are_unique_and_shaped():
    products = demo_products()
    assert 200 <= len(products) <= 300
    ids = [p.id for p in products]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"P\d{4}", pid) for pid in ids)
    assert len({p.title for p in products}) == len(products)
    for p in products:
        assert p.url == f"/product/{p.id}"
        assert p.image == f"/demo/img/{p.id}.svg"
        assert p.currency == "EUR"
        assert len(p.description) > 40


def test_ten_categories_of_similar_size():
    counts = Counter(p.category for p in demo_products())
    assert len(counts) == len(CATEGORIES) == 10
    assert max(counts.values()) - min(counts.values()) <= 4


def test_prices_are_positive_with_a_realistic_spread():
    products = demo_products()
    assert all(p.price > 0 for p in products)
    by_category = defaultdict(list)
    by_kind = defaultdict(list)
    for p in products:
        by_category[p.category].append(p.price)
        by_kind[p.attributes["kind"]].append(p.price)
    for category, prices in by_category.items():
        assert max(prices) / min(prices) > 3, category
    # an espresso machine costs far more than a bag of beans; a stroller more than a picture book
    assert statistics.median(by_kind["espresso-machine"]) > 5 * statistics.median(
        by_kind["coffee-beans"]
    )
    assert statistics.median(by_kind["stroller"]) > 5 * statistics.median(by_kind["picture-book"])


def test_about_four_percent_out_of_stock():
    products = demo_products()
    share = sum(not p.in_stock for p in products) / len(products)
    assert 0.03 <= share <= 0.05


def test_every_complementary_kind_is_in_the_catalogue():
    kinds = {p.attributes["kind"] for p in demo_products()}
    for anchor, partners in COMPLEMENTS.items():
        assert anchor in kinds
        assert set(partners) <= kinds
