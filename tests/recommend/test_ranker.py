"""The learned ranker: trees as arrays, the self-check and its fallback, reasons, cold start, probabilities."""

from __future__ import annotations

import copy
from datetime import datetime

import numpy as np
import pytest

from personalize.recommend.data import PURCHASE, VIEW, HistoryEntry, InteractionLog, ItemTable
from personalize.recommend.engine import DEFAULT_PARAMS, Recommender, every
from personalize.recommend.evaluate import Split, _baseline_scores, run_evaluation
from personalize.recommend.gbm import Forest, export, export_lightgbm
from personalize.recommend.ranker import fit_forest
from personalize.recommend.synthetic import fashion, generate, grocery

DAY = 86400.0


@pytest.fixture(scope="module")
def shop():
    return generate(n_items=600, n_users=800, n_interactions=60_000, seed=3)


@pytest.fixture(scope="module")
def model(shop):
    return Recommender.fit(shop.log, shop.items, user_segments=shop.countries)


def history_of(log: InteractionLog, user: int) -> list[HistoryEntry]:
    rows = np.flatnonzero(log.user == user)
    return [HistoryEntry(int(log.item[r]), int(log.kind[r]), float(log.ts[r]), float(log.qty[r])) for r in rows]


def _training_data(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 6))
    y = (x[:, 0] + 0.5 * x[:, 3] + 0.3 * rng.random(n) > 1.0)
    return x, y


def test_sklearn_trees_as_arrays_predict_exactly_what_sklearn_does(tmp_path):
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = _training_data()
    model = HistGradientBoostingClassifier(max_iter=30, max_depth=4, random_state=0).fit(x, y)
    forest = export(model)
    assert np.allclose(forest.predict(x), model.predict_proba(x)[:, 1], atol=1e-12)
    # the arrays survive an npz file without pickle
    np.savez(tmp_path / "f.npz", **forest.arrays("r"))
    with np.load(tmp_path / "f.npz", allow_pickle=False) as z:
        again = Forest.from_arrays(z, "r")
    assert np.array_equal(again.predict(x), forest.predict(x))


def test_lightgbm_trees_as_arrays_predict_exactly_what_lightgbm_does():
    lightgbm = pytest.importorskip("lightgbm")
    x, y = _training_data()
    booster = lightgbm.train({"objective": "binary", "verbose": -1, "max_depth": 4, "num_leaves": 15}, lightgbm.Dataset(x, y.astype(int)), 30)
    forest = export_lightgbm(booster)
    assert np.allclose(forest.predict(x), booster.predict(x), atol=1e-12)


def test_contributions_add_up_to_the_score_and_name_the_feature_that_decides():
    x, y = _training_data()
    from sklearn.ensemble import HistGradientBoostingClassifier

    forest = export(HistGradientBoostingClassifier(max_iter=30, max_depth=4, random_state=0).fit(x, y))
    contrib = forest.contributions(x[:50])
    assert np.allclose(contrib.sum(axis=1) + forest.baseline + forest.mean[forest.roots].sum(), forest.raw(x[:50]))
    # feature 0 decides the label most, features 1, 2, 4, 5 not at all
    strength = np.abs(contrib).mean(axis=0)
    assert strength.argmax() == 0
    assert strength[[1, 2, 4, 5]].max() < 0.2 * strength[0]


def test_the_self_check_serves_the_best_strategy_on_the_last_window(model):
    check = model.check
    assert check["window_days"] > 0 and check["customers"] >= 30
    for view in ("all", "new"):
        served = model.serve[view]
        recall = check["recall"][view]
        assert recall[served] == max(recall.values()), view
        assert set(recall) >= {"popularity", "buy-again", "item-knn"}


def test_a_ranker_that_loses_is_not_served_and_evaluation_scores_what_is_served():
    # a ranker that sees only best sellers as candidates cannot beat "buy again" on a shop of
    # staples: the self-check must serve buy-again in the "all" view, and the evaluation's
    # "all" list must then be exactly the buy-again list
    shop = generate(n_items=400, n_users=700, n_interactions=50_000, seed=8)
    crippled = {"history_candidates": 0, "item_candidates": 0, "knn_candidates": 0, "content_candidates": 0}
    cutoff = datetime.fromtimestamp(float(shop.log.ts.min()) + 300 * DAY)
    result = run_evaluation(shop.log, shop.items, cutoff, 30, ["personalize", "buy-again"], params=crippled)
    served = result["served"]["serve"]
    assert served["all"] == "buy-again"
    assert result["served"]["check"]["recall"]["all"]["ranker"] < result["served"]["check"]["recall"]["all"]["buy-again"]
    ours, theirs = result["models"]["personalize"]["all"], result["models"]["buy-again"]["all"]
    assert ours["recall@20"] == pytest.approx(theirs["recall@20"], abs=0.01)
    # and the served list is the buy-again ranking, explained as such
    split = Split(shop.log, cutoff.timestamp(), 30)
    model = Recommender.fit(split.train, shop.items, now=split.cutoff, params={"validation_days": 30.0, **crippled})
    user = int(split.users[0])
    hist = history_of(split.train, user)
    got = [s.item for s in model.recommend(hist, 10, now=split.cutoff)]
    scores = _baseline_scores("buy-again", split, len(shop.items))(np.array([user]))[0]
    bought = {h.item for h in hist if h.kind == PURCHASE}
    assert set(got[: min(len(bought), 5)]) <= bought
    assert scores[got[0]] == scores.max()


def test_rhythm_reasons_for_staples():
    shop = grocery(n_items=1500, n_users=600, days=90.0, seed=4)
    model = Recommender.fit(shop.log, shop.items, params={"serve": "ranker"})
    reasons = []
    for user in range(40):
        hist = history_of(shop.log, user)
        reasons += [s.reason for s in model.recommend(hist, 10)]
    rhythm = [r for r in reasons if r.startswith("You buy this every")]
    assert len(rhythm) > 40, reasons[:20]
    assert all(r.endswith(("days", "week", "weeks", "day", "month", "months")) for r in rhythm)
    assert {every(1), every(5), every(7), every(14), every(45), every(90)} == {
        "every day", "every 5 days", "every week", "every 2 weeks", "every 6 weeks", "every 3 months"}


def test_a_new_product_like_a_best_seller_reaches_its_viewers_top_20():
    shop = fashion(n_items=3000, n_users=900, seed=5)
    log, items = shop.log, shop.items
    buys = np.bincount(log.item, minlength=len(items))
    star = int(np.argmax(buys))
    # the new product: the best seller's near-copy, nobody has bought or seen it
    n = len(items)
    copy = ItemTable(
        ids=[*items.ids, "NEW1"], titles=[*items.titles, items.titles[star] + " (new season)"],
        categories=[*items.categories, items.categories[star]], descriptions=[*items.descriptions, items.descriptions[star]],
        in_stock=np.ones(n + 1, dtype=bool), prices=np.append(items.prices, items.prices[star]),
    )
    log2 = InteractionLog(log.user, log.item, log.kind, log.ts, log.qty, log.n_users, n + 1)
    model = Recommender.fit(log2, copy, params={"serve": "ranker"})
    now = float(log.ts.max()) + DAY
    viewers = np.unique(log.user[log.item == star])[:20]
    ranks = []
    for u in viewers:
        hist = history_of(log2, int(u)) + [HistoryEntry(star, VIEW, now)]
        got = [s.item for s in model.recommend(hist, 50, now=now, exclude={star})]
        ranks.append(got.index(n) if n in got else 99)
    assert np.median(ranks) < 20, ranks


def test_purchase_probabilities_are_probabilities_and_follow_purchases(shop, model):
    cutoff = float(shop.log.ts.min()) + 300 * DAY
    split = Split(shop.log, cutoff, 30)
    fitted = Recommender.fit(split.train, shop.items, now=cutoff)
    got, bought_p, other_p = [], [], []
    for c, user in enumerate(split.users[:60]):
        hist = history_of(split.train, int(user))
        p = fitted.purchase_probabilities(hist, range(len(shop.items)), now=cutoff)
        got.append(p)
        truth = np.zeros(len(shop.items), dtype=bool)
        truth[list(split.truth[c])] = True
        bought_p.append(p[truth].mean())
        other_p.append(p[~truth].mean())
    allp = np.concatenate(got)
    assert allp.min() >= 0 and allp.max() <= 1
    assert np.mean(bought_p) > 5 * np.mean(other_p)


def test_saved_ranker_model_recommends_and_explains_exactly_as_fitted(tmp_path, shop, model):
    path = tmp_path / "m.model"
    model.save(path)
    loaded = Recommender.load(path)
    assert loaded.serve == model.serve and loaded.check == model.check
    for user in (1, 2, 6):
        hist = history_of(shop.log, user)
        for view in ("all", "new"):
            assert loaded.recommend(hist, 20, view=view, segment="Germany") == model.recommend(hist, 20, view=view, segment="Germany")



def test_one_visitor_shortcuts_give_what_the_batch_code_gives(shop, model):
    # serving computes one visitor's votes (rows of each neighbour table gathered once), row
    # maxima and ranks with shortcuts; the batch code (training, the self-check) multiplies
    # sparse matrices and sorts per row: the shortcuts must give the same scores and features
    import scipy.sparse as sp

    from personalize.recommend.ranker import (
        FEATURE_NAMES,
        Scores,
        _rank_within_rows,
        _Sparse,
        batch_scores,
        candidates,
        features,
        log_batch,
    )

    parts, p = model.parts, model.params
    n = parts.n_items
    now = float(shop.log.ts.max()) + DAY
    ranked = {"segment_rank": "segment_popular"} | {f"{name}_rank": name for name in ("item_item", "ease", "knn", "content", "personal")}
    value_of_rank = {FEATURE_NAMES.index(r): FEATURE_NAMES.index(v) for r, v in ranked.items()}
    for u in range(0, 120, 3):
        seg = np.array([model._segment_index.get(shop.countries[u], -1)])
        one = log_batch(shop.log, np.array([u]), now, int(p["max_history"]), parts.price, seg)
        fast = batch_scores(parts, one)
        tops = one.personal.max()
        context = one.personal * (1.0 / tops if tops > 0 else 0.0)
        cols = one.items
        ctx = sp.csr_matrix((context, (np.zeros(len(cols), dtype=np.int64), cols)), shape=(1, n))
        binary = sp.csr_matrix((np.ones(len(cols)), (np.zeros(len(cols), dtype=np.int64), cols)), shape=(1, n))
        ref = Scores(_Sparse.of(ctx @ parts.neighbours),
                     _Sparse.of(binary @ parts.neighbours) if parts.item_model == "ease" else fast.ease,
                     _Sparse.of(binary @ parts.knn), _Sparse.of(ctx @ parts.content), fast.personal, _Sparse.of(ctx @ parts.twins))
        for name in ("item_item", "ease", "knn", "content", "twins"):
            a, b = getattr(fast, name), getattr(ref, name)
            assert np.array_equal(a.keys, b.keys[b.data != 0]), (u, name)
            assert np.allclose(a.data, b.data[b.data != 0], rtol=1e-9, atol=0), (u, name)
            assert np.allclose(a.row_max, [b.data.max(initial=0.0)], rtol=1e-9, atol=0), (u, name)
        keys = candidates(parts, one, fast, p)
        got, want = features(parts, one, fast, keys), features(parts, one, ref, keys)
        assert np.allclose(got, want, rtol=1e-9, atol=1e-12), u
        for c, v in value_of_rank.items():  # ranks agree wherever the ranked values are not tied
            vals = want[:, v]
            untied = np.array([np.sum(np.isclose(vals, a, rtol=1e-9, atol=0)) == 1 for a in vals])
            assert np.array_equal(got[untied, c], want[untied, c]), (u, FEATURE_NAMES[c])
    # the one-row rank is the batch's (lexsort by row, then by value, stable), ties included
    values = np.random.default_rng(0).integers(0, 5, 40).astype(np.float64)
    rows = np.zeros(40, dtype=np.int64)
    order = np.lexsort((-values, rows))
    want = np.empty(40)
    want[order] = np.arange(40)
    assert np.array_equal(_rank_within_rows(rows, values), want)
    assert np.array_equal(_rank_within_rows(np.r_[rows, 1], np.r_[values, 3.0])[:40], want)


def test_a_windows_training_rows_do_not_depend_on_how_many_customers_are_scored_at_once(shop):
    from personalize.recommend.engine import _params
    from personalize.recommend.ranker import fit_parts, window_rows

    p = _params(None)
    log = shop.log
    start = float(log.ts.min()) + 300 * DAY
    parts = fit_parts(log, shop.items, start, p, None)
    first_seen = np.full(len(shop.items), np.inf)
    np.minimum.at(first_seen, log.item, log.ts)
    whole = window_rows(log, parts, start, start + 30 * DAY, p, None, first_seen, np.random.default_rng(3), 0)
    assert whole is not None and len(np.unique(whole.group)) > 40 and whole.y.any()
    for step in (16, 7):
        cut = window_rows(log, parts, start, start + 30 * DAY, p, None, first_seen, np.random.default_rng(3), 0, step=step)
        np.testing.assert_array_equal(cut.x, whole.x)
        np.testing.assert_array_equal(cut.y, whole.y)
        np.testing.assert_array_equal(cut.group, whole.group)
        np.testing.assert_array_equal(cut.customer, whole.customer)


def test_windows_fitted_at_once_give_the_model_fitted_one_at_a_time(shop):
    import os
    import threading

    where = set()
    two = Recommender.fit(shop.log, shop.items, params={"fit_threads": 2}, user_segments=shop.countries,
                          progress=lambda message: where.add(threading.current_thread().name) if message.startswith("window") else None)
    if (os.cpu_count() or 1) > 1:
        assert any(name.startswith("personalize-fit") for name in where)  # the windows did run in threads
    one = Recommender.fit(shop.log, shop.items, params={"fit_threads": 1}, user_segments=shop.countries)
    assert one.check == two.check and one.check["recall"]["all"] and one.serve == two.serve
    a, b = one.page_tables, two.page_tables
    assert a.choice == b.choice and "learned" in a.choice
    filled = 0
    for name in ("together", "coview", "learned", "similar"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None)
        if x is not None:
            assert (x != y).nnz == 0, name
            filled += x.nnz
    assert filled
    for user in (0, 7, 41, 300):
        history = history_of(shop.log, user)
        assert one.recommend(history, 20) == two.recommend(history, 20)


def test_one_blas_thread_holds_while_any_caller_is_inside_and_is_lifted_after_the_last():
    # the training windows' pattern (training.in_threads): the caller enters, its threads enter and leave
    import threading

    from threadpoolctl import threadpool_info

    from personalize.recommend.models import one_blas_thread

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    before = blas_threads()
    seen = []

    def window():
        with one_blas_thread():
            seen.append(blas_threads())

    with one_blas_thread():
        threads = [threading.Thread(target=window) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seen.append(blas_threads())  # the threads left; the caller is still inside
    assert seen == [{1}, {1}, {1}]
    assert blas_threads() == before


def test_a_small_shops_ranker_stops_adding_trees_when_held_out_rows_stop_improving():
    """A few thousand training rows (a small shop, a short season) are held out from too: trees that
    only learn noise are not grown. Labels here follow one feature weakly and the rest is noise."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 6))
    y = rng.random(4000) < 1 / (1 + np.exp(-(0.8 * x[:, 0] - 1.5)))
    p = {**DEFAULT_PARAMS, "ranker_negatives": 0}
    stopped, _ = fit_forest(x, y, p)
    grown, _ = fit_forest(x, y, {**p, "ranker_early_stop_rows": 10_000})
    assert len(grown.roots) == p["ranker_trees"]  # no rows held out: every tree is grown
    assert len(stopped.roots) < p["ranker_trees"] / 2
    # and what it keeps still ranks by the feature that matters
    order = np.argsort(-stopped.predict(x))
    assert x[order[:400], 0].mean() > x[:, 0].mean() + 0.5


def test_the_self_check_tries_more_best_sellers_as_candidates_and_serves_them_only_where_they_find_more(shop, model):
    check = model.check
    tried = check["candidates"]
    assert tried["trained"] == DEFAULT_PARAMS["popular_candidates"] and tried["wider"] == DEFAULT_PARAMS["popular_candidates_wide"]
    for view in ("all", "new"):
        as_trained, wider = tried["recall"][view]["as trained"], tried["recall"][view]["wider"]
        assert check["recall"][view]["ranker"] >= as_trained  # "new" may do better still with its own ranker
    # the wider set serves "all" only where it found at least 1 % more (it costs more to serve)
    as_trained, wider = tried["recall"]["all"]["as trained"], tried["recall"]["all"]["wider"]
    assert tried["popular"]["all"] == (tried["wider"] if wider >= as_trained * 1.01 else tried["trained"])
    assert check["recall"]["all"]["ranker"] == (wider if tried["popular"]["all"] == tried["wider"] else as_trained)
    # the lists of a view are drawn from the candidates chosen for it: with the other number, other lists
    visitors = np.unique(shop.log.user)[:60].tolist()
    served = [[s.item for s in model.recommend(history_of(shop.log, u), 20)] for u in visitors]
    other = tried["trained"] if tried["popular"]["all"] == tried["wider"] else tried["wider"]
    flipped = copy.copy(model)  # the same model, the check's other choice
    flipped.check = {**check, "candidates": {**tried, "popular": {**tried["popular"], "all": other}}}
    again = [[s.item for s in flipped.recommend(history_of(shop.log, u), 20)] for u in visitors]
    forced = copy.copy(model)  # no choice recorded, the other number as the setting
    forced.check = {k: v for k, v in check.items() if k != "candidates"}
    forced.params = {**model.params, "popular_candidates": other}
    assert again == [[s.item for s in forced.recommend(history_of(shop.log, u), 20)] for u in visitors]
    assert served != again


def test_without_a_wider_candidate_set_the_check_keeps_the_candidates_as_trained(shop):
    plain = Recommender.fit(shop.log, shop.items, params={"popular_candidates_wide": 0})
    assert "candidates" not in plain.check
    assert plain.check["recall"]["all"]["ranker"] > 0
