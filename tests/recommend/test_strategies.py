"""The page strategies on plain arrays: bought together, similar items, cart complements,
recently viewed and re-ranking a given list."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from personalize.recommend.data import CART, PURCHASE, VIEW, InteractionLog, ItemTable
from personalize.recommend.engine import Recommender, read_summary
from personalize.recommend.strategies import (
    PAGE_PARAMS,
    Pages,
    PageTables,
    baskets,
    choose_learned,
    choose_similar,
    choose_together,
    describe_pages,
    fit_page_tables,
    rerank,
)

DAY = 86400.0


def _log(rows, n_items, n_users=None):
    u, i, k, t = (np.array(c) for c in zip(*rows, strict=True))
    return InteractionLog(u.astype(np.int32), i.astype(np.int32), k.astype(np.int8), t.astype(np.float64),
                          np.ones(len(u), np.float32), int(n_users or u.max() + 1), n_items)


def _orders(spec, start=0.0):
    """``spec``: list of (user, [items]) orders, one day apart."""
    rows = []
    for day, (user, items) in enumerate(spec):
        rows += [(user, i, PURCHASE, start + day * DAY) for i in items]
    return rows


def test_an_order_is_a_customers_purchases_of_one_moment():
    log = _log([(0, 1, PURCHASE, 10.0), (0, 2, PURCHASE, 10.0), (0, 3, PURCHASE, 20.0), (1, 1, PURCHASE, 10.0), (1, 4, VIEW, 10.0)], 5)
    b, when = baskets(log)
    assert b.shape == (3, 5)
    assert sorted(tuple(np.flatnonzero(r.toarray())) for r in b) == [(1,), (1, 2), (3,)]
    assert sorted(when.tolist()) == [10.0, 10.0, 20.0]


def test_bought_together_follows_what_the_shop_measures_best_recent_pairs_here():
    # for ten months item 1 went with items 2-16; for the last two it goes with 17-31 (a new range)
    rng = np.random.default_rng(0)
    rows = []
    for n in range(900):
        day = n * 0.4  # 360 days
        group = np.arange(2, 17) if day < 300 else np.arange(17, 32)
        rows += [(n, int(i), PURCHASE, day * DAY) for i in (1, *rng.choice(group, 4, replace=False))]
    log = _log(rows, 40)
    now = float(log.ts.max()) + 1
    choice = choose_together(log, now, {**PAGE_PARAMS})
    assert choice["orders"] >= 50
    assert choice["half_life_days"] > 0, choice  # all-time counts would still say 2
    assert set(choice["recall"]) >= {"half_life=0,gamma=0.5,alpha=0", "half_life=14,gamma=0.5,alpha=0"}
    tables = fit_page_tables(log, now)
    pages = Pages(tables, [f"item {i}" for i in range(40)], np.ones(40, bool), sp.csr_matrix((40, 40)), sp.csr_matrix((40, 40)), np.ones(40))
    first = pages.together(1, 3)
    assert all(17 <= p.item < 32 for p in first), first
    assert first[0].reason == "Frequently bought with item 1" and first[0].source == "together"
    assert all(p.item != 1 for p in pages.together(1, 10))


def test_fixed_settings_skip_the_measurement():
    log = _log(_orders([(0, [0, 1]), (1, [0, 1]), (2, [1, 2])]), 3)
    fixed = {"together_alpha": 0.0, "together_gamma": 0.0, "together_half_life_days": 0.0, "together_content_weight": 0.0,
             "similar_together_share": 1.0, "similar_content_weight": 0.1, "together_learned": False,
             "similar_learned": False}
    tables = fit_page_tables(log, float(log.ts.max()) + 1, fixed)
    assert tables.learned is None and tables.similar is None
    assert tables.choice == {"alpha": 0.0, "gamma": 0.0, "half_life_days": 0.0, "content": 0.0, "beta": PAGE_PARAMS["together_beta"],
                             "similar_together_share": 1.0, "similar_content": 0.1}
    row = tables.together[1].toarray().ravel()
    assert row[0] == 2 and row[2] == 1 and row[1] == 0  # plain counts, never the item itself


def _pages(tables: PageTables, n: int, stock=None):
    return Pages(tables, [f"item {i}" for i in range(n)], np.ones(n, bool) if stock is None else stock,
                 sp.csr_matrix((n, n)), sp.csr_matrix((n, n)), np.arange(n, dtype=float))


def test_cart_complements_never_show_the_cart_and_name_the_cart_item():
    spec = [(n, [0, 1, 2]) for n in range(10)] + [(n, [3, 4]) for n in range(10, 20)]
    log = _log(_orders(spec), 6)
    pages = _pages(fit_page_tables(log, float(log.ts.max()) + 1), 6)
    picks = pages.complements([0, 1], 4)
    assert picks[0].item == 2 and picks[0].reason in ("Goes with item 0 in your cart", "Goes with item 1 in your cart")
    assert {p.item for p in picks}.isdisjoint({0, 1})
    assert len(picks) == 4  # best sellers fill the rest
    assert pages.complements([], 3)[0].source == "popular"


def test_out_of_stock_and_excluded_items_never_show():
    spec = [(n, [0, 1, 2]) for n in range(10)]
    log = _log(_orders(spec), 4)
    stock = np.array([True, False, True, True])
    pages = _pages(fit_page_tables(log, float(log.ts.max()) + 1), 4, stock)
    for picks in (pages.together(0, 4), pages.similar(0, 4), pages.complements([0], 4), pages.together(0, 4, exclude=[2])):
        assert 1 not in [p.item for p in picks]
    assert 2 not in [p.item for p in pages.together(0, 4, exclude=[2])]


def test_co_view_sessions_make_similar_items():
    # views in sessions: 0 with 1, 2 with 3; nobody bought anything
    rows = []
    for u in range(20):
        pair = (0, 1) if u % 2 else (2, 3)
        rows += [(u, pair[0], VIEW, u * DAY), (u, pair[1], VIEW, u * DAY + 60)]
    log = _log(rows, 5)
    tables = fit_page_tables(log, float(log.ts.max()) + 1)
    picks = _pages(tables, 5).similar(0, 2)
    assert picks[0].item == 1 and picks[0].reason == "Customers who viewed item 0 also viewed this"


def test_recently_viewed_is_newest_first_each_once():
    items = np.array([5, 6, 5, 7, 8])
    kinds = np.array([VIEW, VIEW, VIEW, CART, VIEW])
    picks = Pages.recently_viewed(items, kinds, 10, exclude=[8])
    assert [p.item for p in picks] == [5, 6]
    assert picks[0].reason == "You viewed this recently"


def test_rerank_puts_what_the_model_likes_first_and_keeps_the_given_order_otherwise():
    assert rerank(np.zeros(4)).tolist() == [0, 1, 2, 3]
    assert rerank(np.array([0.0, 0.0, 0.0, 5.0])).tolist() == [3, 0, 1, 2]
    assert rerank(np.array([np.nan, -1.0, 0.0])).tolist() == [0, 1, 2]
    assert rerank(np.zeros(0)).tolist() == []


def test_the_model_file_keeps_the_page_tables(tmp_path):
    spec = [(n % 7, [0, 1, 2] if n % 2 else [3, 4]) for n in range(40)]
    log = _log(_orders(spec), 6, 7)
    items = ItemTable([f"p{i}" for i in range(6)], [f"Product {i}" for i in range(6)], [""] * 6, [""] * 6, np.ones(6, bool))
    model = Recommender.fit(log, items, params={"tune": False})
    assert model.page_tables.together.nnz > 0
    model.save(tmp_path / "m.model")
    again = Recommender.load(tmp_path / "m.model")
    assert (again.page_tables.together != model.page_tables.together).nnz == 0
    assert again.page_tables.choice == model.page_tables.choice
    assert [p.item for p in again.pages.together(0, 3)] == [p.item for p in model.pages.together(0, 3)]
    assert again.pages.together(0, 1)[0].reason == "Frequently bought with Product 0"


def _look_alikes(pairs, n):
    """A content table: each (a, b) of ``pairs`` look alike (both ways)."""
    r = [a for a, b in pairs] + [b for a, b in pairs]
    c = [b for a, b in pairs] + [a for a, b in pairs]
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n, n))


def test_similar_items_follow_the_shops_chosen_mix_and_still_show_look_alikes_for_a_new_item():
    n = 6
    together = sp.csr_matrix(np.array([[0, 0, 1, 0, 0, 0]] + [[0] * n] * (n - 1), dtype=np.float32))
    knn = sp.csr_matrix(np.array([[0, 1, 0, 0, 0, 0]] + [[0] * n] * (n - 1), dtype=np.float32))
    content = _look_alikes([(4, 5)], n)
    titles = [f"item {i}" for i in range(n)]

    def pages(choice):
        return Pages(PageTables(together, sp.csr_matrix((n, n), dtype=np.float32), choice), titles, np.ones(n, bool), knn, content, np.arange(n, dtype=float))

    # all bought-together: item 2 first, item 1 (only the same customers chose it) not at all
    picks = pages({"similar_together_share": 1.0, "similar_content": 0.0}).similar(0, 2, fill=False)
    assert [p.item for p in picks] == [2] and picks[0].source == "together"
    # all item-kNN: item 1 first
    assert [p.item for p in pages({"similar_together_share": 0.0, "similar_content": 0.0}).similar(0, 1)] == [1]
    # item 4: nothing bought with it nor chosen with it, and no look-alike weight chosen: its look-alike shows
    picks = pages({"similar_together_share": 1.0, "similar_content": 0.0}).similar(4, 3)
    assert picks[0].item == 5 and picks[0].reason == "Similar to item 4" and picks[0].source == "content"
    assert [p.source for p in picks[1:]] == ["popular", "popular"]


def test_bought_together_adds_look_alikes_only_with_the_chosen_weight():
    n = 6
    together = sp.csr_matrix(np.array([[0, 0, 1, 0, 0, 0]] + [[0] * n] * (n - 1), dtype=np.float32))
    content = _look_alikes([(0, 3)], n)

    def pages(weight):
        return Pages(PageTables(together, sp.csr_matrix((n, n), dtype=np.float32), {"content": weight}), [f"item {i}" for i in range(n)],
                     np.ones(n, bool), sp.csr_matrix((n, n)), content, np.arange(n, dtype=float))

    assert [p.item for p in pages(0.0).together(0, 3, fill=False)] == [2]
    picks = pages(0.1).together(0, 3, fill=False)
    assert [p.item for p in picks] == [2, 3]
    assert [p.source for p in picks] == ["together", "content"] and picks[1].reason == "Similar to item 0"


def test_the_held_out_choices_measure_each_setting_and_read_nothing_after_now():
    # item 2k goes with 2k+1 in every order; customers later buy the partner of their last item
    rng = np.random.default_rng(1)
    rows, n = [], 40
    for o in range(1200):
        k = int(rng.integers(n // 2))
        t = o * 0.25 * DAY  # 300 days
        rows += [(1000 + o, 2 * k, PURCHASE, t), (1000 + o, 2 * k + 1, PURCHASE, t)]
    for u in range(200):
        a = int(rng.integers(n))
        rows += [(u, a, PURCHASE, 200 * DAY), (u, a ^ 1, PURCHASE, 290 * DAY)]
    log = _log(rows, n)
    now = 300 * DAY
    content = _look_alikes([(2 * k, 2 * k + 1) for k in range(n // 2)], n)
    together = choose_together(log, now, {**PAGE_PARAMS}, content)
    assert together["orders"] >= 50 and {"content=0.05", "content=0.1", "content=0.2"} <= set(together["recall"])
    similar = choose_similar(log, now, {**PAGE_PARAMS}, together, content)
    assert similar["similar_customers"] == 200
    assert {"share=0.5,content=0.3", "share=0,content=0.3", "share=1,content=0.3"} <= set(similar["similar_recall"])
    assert similar["similar_recall"]["share=1,content=0.3"] == 1.0  # the partner is the first pick
    # what happens after now changes nothing
    later = _log(rows + [(u, (7 * u) % n, PURCHASE, 310 * DAY) for u in range(200)], n)
    assert choose_similar(later, now, {**PAGE_PARAMS}, together, content) == similar
    tables = fit_page_tables(log, now, content=content)
    assert {"similar_together_share", "similar_content", "content"} <= set(tables.choice)


def _paired_shop(seed=3, n=200, orders=3000, days=180):
    """Item 2k goes with 2k+1 (and, less often, with 2k+2); every order adds a random item; the
    catalogue's look-alikes pair 2k with 2k+3, which are never bought together by design."""
    rng = np.random.default_rng(seed)
    popular = rng.zipf(1.3, size=orders) % (n // 2)
    rows = []
    for o in range(orders):
        k = int(popular[o])
        t = o * days / orders * DAY
        items = {2 * k, 2 * k + 1 if rng.random() < 0.8 else (2 * k + 2) % n, int(rng.integers(n))}
        rows += [(o % 700, i, PURCHASE, t) for i in items]
    content = _look_alikes([(2 * k, (2 * k + 3) % n) for k in range(n // 2)], n)
    return _log(rows, n, 700), content, days * DAY


def test_bought_together_is_learned_only_where_it_wins_on_the_shops_own_last_window():
    log, content, now = _paired_shop()
    p = {**PAGE_PARAMS}
    choice = fit_page_tables(log, now, {"together_learned": False}, content=content).choice
    booster, said = choose_learned(log, now, p, choice, content)
    assert said["orders"] >= 50 and set(said["recall"]) == {"counts family", "learned"}
    # served exactly when it beats the counts setting by the shop's minimum gain, measured on the same window
    assert said["serve"] == (said["recall"]["learned"] > said["recall"]["counts family"] * (1 + p["min_gain"]) + 1e-9)
    assert (booster is not None) == said["serve"]
    # forced on, the served list follows the learned table and names why each item is there
    tables = fit_page_tables(log, now, {"together_learned": True}, content=content)
    assert tables.choice["learned"]["serve"] and tables.learned is not None and tables.learned.nnz
    pages = Pages(tables, [f"item {i}" for i in range(200)], np.ones(200, bool), sp.csr_matrix((200, 200)), content, np.ones(200))
    for a in (0, 2, 4):
        picks = pages.together(a, 5, fill=False)
        row = tables.learned[a].toarray().ravel()
        assert [p.item for p in picks] == sorted(np.flatnonzero(row), key=lambda j: (-row[j], j))[:5]
        assert picks[0].item == a + 1, picks  # its partner, bought with it four times in five
        assert picks[0].reason == f"Frequently bought with item {a}" and a not in [p.item for p in picks]


def test_a_learned_look_alike_is_said_as_one_and_orders_after_now_change_nothing():
    log, content, now = _paired_shop()
    n = 200
    tables = fit_page_tables(log, now, {"together_learned": True}, content=content)
    pages = Pages(tables, [f"item {i}" for i in range(n)], np.ones(n, bool), sp.csr_matrix((n, n)), content, np.ones(n))
    sources = []
    for a in range(0, n, 2):
        for pick in pages.together(a, 50, fill=False):
            bought = tables.together[a, pick.item] > 0
            assert (pick.source, pick.reason) == (("together", f"Frequently bought with item {a}") if bought else ("content", f"Similar to item {a}"))
            sources.append(pick.source)
    assert "content" in sources and "together" in sources  # a look-alike never bought with it still shows, said as one
    later = _log([*zip(log.user.tolist(), log.item.tolist(), log.kind.tolist(), log.ts.tolist(), strict=True)]
                 + [(5, 7, PURCHASE, now + DAY), (5, 8, PURCHASE, now + DAY)], n, 700)
    again = fit_page_tables(later, now, {"together_learned": True}, content=content)
    assert (again.learned != tables.learned).nnz == 0


def test_the_model_file_keeps_the_learned_tables(tmp_path):
    log, content, now = _paired_shop(n=60, orders=2000)
    items = ItemTable([f"p{i}" for i in range(60)], [f"Product {i}" for i in range(60)], [""] * 60, [""] * 60, np.ones(60, bool))
    model = Recommender.fit(log, items, now=now, params={"tune": False, "pages": {"together_learned": True, "similar_learned": True}})
    for name in ("learned", "similar"):
        assert getattr(model.page_tables, name) is not None and getattr(model.page_tables, name).nnz
    model.save(tmp_path / "m.model")
    again = Recommender.load(tmp_path / "m.model")
    for name in ("learned", "similar"):
        assert (getattr(again.page_tables, name) != getattr(model.page_tables, name)).nnz == 0
    assert [p.item for p in again.pages.together(0, 5)] == [p.item for p in model.pages.together(0, 5)]
    assert [p.item for p in again.pages.similar(0, 5)] == [p.item for p in model.pages.similar(0, 5)]
    # the admin's model panel reads the file's summary: it says which product-page lists are learned
    assert "Product pages: bought together learned (" in read_summary(tmp_path / "m.model")["description"]


def test_similar_items_are_learned_only_where_they_win_and_keep_their_reasons():
    log, content, now = _paired_shop()
    n = 200
    p = {**PAGE_PARAMS}
    choice = fit_page_tables(log, now, {"together_learned": False, "similar_learned": False}, content=content).choice
    booster, said = choose_learned(log, now, p, choice, content, "similar")
    assert said["customers"] >= 50 and set(said["recall"]) == {"chosen mix", "learned"}
    assert said["serve"] == (said["recall"]["learned"] > said["recall"]["chosen mix"] * (1 + p["min_gain"]) + 1e-9)
    assert (booster is not None) == said["serve"]
    tables = fit_page_tables(log, now, {"similar_learned": True}, content=content)
    assert tables.choice["similar_learned"]["serve"] and tables.similar is not None and tables.similar.nnz
    knn = sp.csr_matrix((n, n), dtype=np.float32)
    pages = Pages(tables, [f"item {i}" for i in range(n)], np.ones(n, bool), knn, content, np.ones(n))
    reasons = {"together": "Frequently bought with item {}", "content": "Similar to item {}",
               "also-chosen": "Customers who chose item {} also chose this"}
    for a in (0, 2, 4, 10):
        picks = pages.similar(a, 5, fill=False)
        row = tables.similar[a].toarray().ravel()
        # the learned order (no co-view in this shop; equal scores go to the more popular item), never the item itself
        best = sorted(np.flatnonzero(row), key=lambda j: (-row[j], j))[:5]
        assert [row[q.item] for q in picks] == [row[j] for j in best]
        assert {q.item for q in picks if row[q.item] > row[best[-1]]} == {j for j in best if row[j] > row[best[-1]]}
        assert a not in [q.item for q in picks]
        for q in picks:
            assert q.reason == reasons[q.source].format(a)
            if q.source == "together":
                assert tables.together[a, q.item] > 0
            if q.source == "content":
                assert content[a, q.item] > 0


def test_train_says_which_product_page_lists_are_learned_and_by_how_much():
    log, content, now = _paired_shop()
    choice = fit_page_tables(log, now, {"together_learned": True}, content=content).choice
    said = describe_pages(choice)
    learned = choice["learned"]["recall"]
    assert said.startswith("Product pages: bought together learned (")
    assert f"{learned['learned']:.1%} vs {learned['counts family']:.1%}" in said
    mix = choice["similar_learned"]
    assert ("similar items learned" in said) == mix["serve"] and ("similar items on fixed settings" in said) == (not mix["serve"])
    assert describe_pages(fit_page_tables(log, now, {"together_learned": False, "similar_learned": False}, content=content).choice) == ""
