"""``personalize scores`` and ``personalize segments`` on a small slice of Online Retail."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from personalize.cli import cli

# ../shared beside the checkout, wherever the checkout is (as CI lays it out)
DATA = Path(__file__).resolve().parents[3] / "shared/datasets/online-retail/online_retail_2010_2011.csv.gz"


@pytest.mark.skipif(not DATA.exists(), reason="the Online Retail file is not here")
def test_scores_then_segments(runner, tmp_path):
    sample = tmp_path / "orders.csv"
    with gzip.open(DATA, "rt", encoding="utf-8") as src, open(sample, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i > 6000:
                break
            dst.write(line)
    assert runner.invoke(cli, ["import-orders", str(sample)]).exit_code == 0
    result = runner.invoke(cli, ["scores", "--as-of", "2011-02-01"])
    assert result.exit_code == 0, result.output
    assert "customers scored" in result.output and "cluster " in result.output
    assert "next 30 days: about " in result.output and "customers expected to order" in result.output
    assert "likely categories: none, because no purchased product has a category" in result.output, "Online Retail has no categories"
    from personalize.app import create_app
    from personalize.segments.store import create_segment

    app = create_app()
    with app.app_context():
        create_segment(1, {"key": "champions", "rule": {"field": "scores.rfm_segment", "op": "eq", "value": "Champions"}})
        from personalize.db import db

        db.session.remove()
        db.engine.dispose()
    result = runner.invoke(cli, ["segments", "rebuild", "--as-of", "2011-02-01"])
    assert result.exit_code == 0 and result.output.startswith("champions: ")
    listed = runner.invoke(cli, ["segments", "list"]).output
    assert listed.startswith("champions\t") and "\tready\t" in listed
    assert runner.invoke(cli, ["segments", "rebuild", "nope"]).exit_code != 0
