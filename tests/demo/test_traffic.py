"""Generated visitor histories: deterministic, valid events, and structure a model can learn."""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict

import pytest

from personalize.demo.catalog import COMPLEMENTS, demo_products
from personalize.demo.traffic import PERSONAS, demo_events, demo_personas, persona_affinities
from personalize.profiles.events import validate_event

NOW = 1_800_000_000.0  # a fixed "now" so the histories are comparable
N_VISITORS = 3000


@pytest.fixture(scope="module")
def products():
    return demo_products()


@pytest.fixture(scope="module")
def by_id(products):
    return {p.id: p for p in products}


@pytest.fixture(scope="module")
def events(products):
    return demo_events(products, n_visitors=N_VISITORS, seed=7, now=NOW)


@pytest.fixture(scope="module")
def orders(events):
    return [e for e in events if e["type"] == "order_completed"]


def test_same_seed_gives_the_same_history_and_another_seed_another(products):
    first = demo_events(products, n_visitors=200, seed=3, now=NOW)
    assert first == demo_events(products, n_visitors=200, seed=3, now=NOW)
    assert first != demo_events(products, n_visitors=200, seed=4, now=NOW)
    assert demo_personas(200, 3) == demo_personas(200, 3)


def test_generation_is_fast(products):
    started = time.perf_counter()
    demo_events(products, n_visitors=N_VISITORS, seed=11, now=NOW)
    assert time.perf_counter() - started < 4.0  # about 0.2 s on a laptop


def test_a_few_thousand_visitors_with_a_realistic_funnel(events, orders):
    types = Counter(e["type"] for e in events)
    assert len({e["visitor"] for e in events}) == N_VISITORS
    assert types["page_viewed"] >= N_VISITORS
    assert types["product_viewed"] > 4 * types["product_added"] > 0
    assert types["product_added"] > 2 * types["order_completed"]
    assert len(orders) > 300


def test_event_ids_are_unique_and_derived_from_the_visitor(events):
    ids = [e["id"] for e in events]
    assert len(set(ids)) == len(ids)
    assert all(e["id"].startswith(e["visitor"] + "-") for e in events)
    order_ids = [e["order_id"] for e in events if e["type"] == "order_completed"]
    assert len(set(order_ids)) == len(order_ids)


REQUIRED = {
    "page_viewed": {"id", "type", "visitor", "ts"},
    "product_viewed": {"id", "type", "visitor", "ts", "product_id"},
    "product_added": {"id", "type", "visitor", "ts", "product_id", "quantity", "price"},
    "order_completed": {"id", "type", "visitor", "ts", "order_id", "items", "revenue", "currency"},
}


def test_each_event_has_the_fields_of_its_type(events, by_id):
    for e in events:
        assert REQUIRED[e["type"]] <= set(e), e
        assert isinstance(e["ts"], int)
        if "product_id" in e:
            assert e["product_id"] in by_id
        if e["type"] == "product_added":
            assert e["quantity"] == 1 and e["price"] == by_id[e["product_id"]].price
        if e["type"] == "order_completed":
            assert e["currency"] == "EUR" and e["items"]
            for item in e["items"]:
                assert set(item) == {"product_id", "quantity", "price"}
                assert by_id[item["product_id"]].in_stock
            assert e["revenue"] == pytest.approx(
                sum(i["price"] * i["quantity"] for i in e["items"])
            )


def test_the_server_accepts_every_event(events):
    # The same validation the events API applies; a rejected event would fail the demo's ingest.
    for index, e in enumerate(events):
        validate_event(e, index, now_ms=NOW * 1000)


def test_history_covers_the_last_sixty_days_in_order(events):
    stamps = [e["ts"] for e in events]
    assert stamps == sorted(stamps)
    assert min(stamps) >= (NOW - 60 * 86400) * 1000
    assert max(stamps) < NOW * 1000
    assert max(stamps) - min(stamps) > 50 * 86400 * 1000
    last_seen: dict[str, tuple[int, int]] = {}
    for e in events:  # a visitor's own events are numbered in the order they happened
        n = int(e["id"].rsplit("-", 1)[1])
        previous = last_seen.get(e["visitor"], (0, 0))
        assert n > previous[0] and e["ts"] >= previous[1]
        last_seen[e["visitor"]] = (n, e["ts"])


def test_personas_are_known_and_a_quarter_are_mixes():
    personas = demo_personas(N_VISITORS, 7)
    assert len(personas) == N_VISITORS
    for persona in personas.values():
        assert all(part in PERSONAS for part in persona.split("+"))
    mixed = sum("+" in p for p in personas.values()) / len(personas)
    assert 0.15 < mixed < 0.35
    assert sum(persona_affinities("runner+coffee lover").values()) == pytest.approx(1.0)


def test_each_persona_browses_mostly_its_own_categories(events, by_id):
    personas = demo_personas(N_VISITORS, 7)
    views: dict[str, Counter] = defaultdict(Counter)
    overall: Counter = Counter()
    for e in events:
        if e["type"] == "product_viewed":
            slug = by_id[e["product_id"]].attributes["category_slug"]
            views[personas[e["visitor"]]][slug] += 1
            overall[slug] += 1
    total = sum(overall.values())
    for persona in PERSONAS:
        seen = views[persona]
        main = max(PERSONAS[persona], key=PERSONAS[persona].get)
        share = seen[main] / sum(seen.values())
        assert share > 0.45, (persona, share)
        assert share > 2.5 * overall[main] / total, persona


def test_complementary_products_are_bought_together_far_above_chance(orders, by_id):
    baskets = [{by_id[i["product_id"]].attributes["kind"] for i in o["items"]} for o in orders]
    n = len(baskets)
    count = Counter(kind for basket in baskets for kind in basket)
    lifts = {}
    for anchor, partners in COMPLEMENTS.items():
        for partner in partners:
            together = sum(1 for b in baskets if anchor in b and partner in b)
            if count[anchor] >= 15:
                lifts[(anchor, partner)] = together / count[anchor] / (count[partner] / n)
    assert len(lifts) >= 8
    assert statistics.median(lifts.values()) > 5, lifts
    assert min(lifts.values()) > 2, lifts


def test_complements_have_a_favourite_partner_product(orders, by_id):
    # item-to-item models work on products, not kinds: each anchor's favourite partner must stand out
    baskets = [{i["product_id"] for i in o["items"]} for o in orders]
    shares = []
    for pid, product in by_id.items():
        if product.attributes["kind"] not in COMPLEMENTS:
            continue
        with_it = [b for b in baskets if pid in b]
        if len(with_it) >= 5:
            partners = Counter(q for b in with_it for q in b if q != pid)
            shares.append(partners.most_common(1)[0][1] / len(with_it))
    assert len(shares) >= 10
    assert statistics.median(shares) > 0.25


def test_a_few_products_get_most_of_the_views_in_each_category(events, by_id, products):
    views = Counter(e["product_id"] for e in events if e["type"] == "product_viewed")
    categories = defaultdict(list)
    for p in products:
        categories[p.category].append(views[p.id])
    for category, counts in categories.items():
        counts.sort(reverse=True)
        assert counts[0] > 4 * statistics.median(counts), category
