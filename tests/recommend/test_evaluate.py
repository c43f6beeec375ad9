"""Offline evaluation: metrics on hand-made cases, the split, the command, and the real benchmark."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from personalize.recommend.cli import make_evaluate_command
from personalize.recommend.data import PURCHASE, VIEW, InteractionLog
from personalize.recommend.evaluate import (
    Split,
    hit_at,
    ndcg_at,
    recall_at,
    run_evaluation,
    summarize,
)
from personalize.recommend.synthetic import generate

ONLINE_RETAIL = Path(__file__).resolve().parents[3] / "shared/datasets/online-retail/online_retail_2010_2011.csv.gz"
DAY = 86400.0


def test_recall_divides_by_the_smaller_of_k_and_the_truth():
    assert recall_at([1, 2, 3, 4], {2, 4, 9}, 4) == pytest.approx(2 / 3)
    assert recall_at([1, 2, 3, 4], {1, 2, 3, 4, 5, 6}, 2) == pytest.approx(1.0)  # 2 hits of at most 2
    assert recall_at([7, 8], {1}, 2) == 0.0
    assert recall_at([1], set(), 20) == 0.0


def test_ndcg_by_hand():
    # hits at ranks 1 and 3 of 3; two relevant items: ideal = 1 + 1/log2(3)
    expected = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at([5, 6, 7], {5, 7}, 3) == pytest.approx(expected)
    assert ndcg_at([6, 5], {5}, 1) == 0.0
    assert ndcg_at([5, 6], {5}, 10) == pytest.approx(1.0)


def test_hit_rate_and_coverage_by_hand():
    assert hit_at([1, 2, 3], {3}, 3) == 1.0
    assert hit_at([1, 2, 3], {3}, 2) == 0.0
    m = summarize([np.array([0, 1]), np.array([1, 2])], [{0}, {3}], n_items=10)
    assert m["recall@20"] == pytest.approx(0.5)
    assert m["hr@10"] == pytest.approx(0.5)
    assert m["ndcg@10"] == pytest.approx(0.5)
    assert m["coverage@20"] == pytest.approx(3 / 10)


def test_split_keeps_customers_with_history_and_a_purchase_in_the_window():
    t0 = datetime(2011, 6, 1).timestamp()
    # user 0: history + buys in window; user 1: only a view in window; user 2: no history
    rows = [
        (0, 0, PURCHASE, t0 - 5 * DAY), (0, 1, PURCHASE, t0 + DAY), (0, 0, PURCHASE, t0 + 2 * DAY),
        (1, 1, PURCHASE, t0 - DAY), (1, 2, VIEW, t0 + DAY),
        (2, 3, PURCHASE, t0 + DAY),
        (0, 2, PURCHASE, t0 + 40 * DAY),  # after the window
    ]
    u, i, k, ts = (np.array(c) for c in zip(*rows, strict=True))
    log = InteractionLog(u.astype(np.int32), i.astype(np.int32), k.astype(np.int8), ts.astype(float), np.ones(len(u), np.float32), 3, 4)
    split = Split(log, t0, 30)
    assert split.users.tolist() == [0]
    assert split.truth == [{0, 1}]
    assert split.bought == [{0}]
    assert len(split.train) == 2


@pytest.fixture(scope="module")
def synthetic_result():
    shop = generate(n_items=800, n_users=2500, n_interactions=250_000, seed=11)
    cutoff = datetime.fromtimestamp(float(shop.log.ts.min()) + 300 * DAY)
    return run_evaluation(shop.log, shop.items, cutoff, 30)


def test_result_shape(synthetic_result):
    assert synthetic_result["engine"] == "personalize"
    assert set(synthetic_result["models"]) == {"personalize", "popularity", "buy-again", "item-knn", "ease"}
    for m in synthetic_result["models"].values():
        assert set(m) == {"all", "new", "fit_seconds"}
        for view in ("all", "new"):
            assert set(m[view]) == {"recall@20", "ndcg@10", "hr@10", "coverage@20"}
            assert all(0.0 <= v <= 1.0 for v in m[view].values())


def test_engine_on_synthetic_data(synthetic_result):
    models = synthetic_result["models"]
    ours = models["personalize"]
    best_all = max(m["all"]["recall@20"] for name, m in models.items() if name != "personalize")
    assert ours["all"]["recall@20"] > best_all
    # on this generator the pure item-item baselines still edge us out for new items
    # (a known gap, see docs/evaluation.md); we stay close to them and far above popularity
    best_new = max(models[name]["new"]["recall@20"] for name in ("item-knn", "ease"))
    assert ours["new"]["recall@20"] > 0.9 * best_new
    assert ours["new"]["recall@20"] > models["popularity"]["new"]["recall@20"]


def test_evaluate_command_on_an_orders_file(tmp_path):
    path = tmp_path / "orders.csv"
    lines = ["InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"]
    rng = np.random.default_rng(0)
    for n in range(400):
        day = datetime(2011, 1, 1).timestamp() + n * 0.75 * DAY
        when = datetime.fromtimestamp(day).strftime("%Y-%m-%d %H:%M:%S")
        customer = 100 + n % 40
        for code in rng.choice(30, size=3, replace=False):
            lines.append(f"{n},P{code},Thing {code},1,{when},1.5,{customer},United Kingdom")
    path.write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    cmd = make_evaluate_command()
    out = runner.invoke(cmd, ["--orders", str(path), "--cutoff", "2011-09-01", "--format", "json", "--models", "personalize,popularity"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert set(result["models"]) == {"personalize", "popularity"}
    table = runner.invoke(cmd, ["--orders", str(path), "--cutoff", "2011-09-01", "--models", "buy-again"])
    assert table.exit_code == 0 and "buy-again" in table.stdout
    bad = runner.invoke(cmd, ["--orders", str(path), "--cutoff", "2011-09-01", "--models", "magic"])
    assert bad.exit_code != 0 and "magic" in bad.output
    neither = runner.invoke(cmd, ["--cutoff", "2011-09-01"])
    assert neither.exit_code != 0


def test_evaluate_command_uses_the_site_loader():
    shop = generate(n_items=300, n_users=400, n_interactions=30_000, seed=2)
    asked = []

    def load_site(site: str):
        asked.append(site)
        return shop.log, shop.items

    cutoff = datetime.fromtimestamp(float(shop.log.ts.min()) + 300 * DAY).strftime("%Y-%m-%d")
    out = CliRunner().invoke(make_evaluate_command(load_site), ["--site", "demo", "--cutoff", cutoff, "--format", "json", "--models", "popularity"])
    assert out.exit_code == 0, out.output
    assert asked == ["demo"]
    assert "popularity" in json.loads(out.stdout)["models"]


@pytest.mark.slow
@pytest.mark.skipif(not ONLINE_RETAIL.exists(), reason="the shared Online Retail file is not here")
def test_engine_beats_the_targets_on_online_retail():
    from personalize.importers import read_uci_orders
    from personalize.recommend.orders import log_from_orders

    log, items, _ = log_from_orders(read_uci_orders(ONLINE_RETAIL))
    result = run_evaluation(log, items, datetime(2011, 11, 9), 30, ["personalize", "buy-again"])
    ours = result["models"]["personalize"]
    assert ours["all"]["recall@20"] >= 0.365
    assert ours["new"]["recall@20"] >= 0.131
    assert ours["all"]["recall@20"] > result["models"]["buy-again"]["all"]["recall@20"]
