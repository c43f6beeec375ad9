"""The widget's weight budget: it loads on every page of a shop."""

import gzip
from pathlib import Path

WIDGET = Path(__file__).resolve().parents[2] / "static" / "widget.js"
BUDGET = 6144  # bytes, gzip -9


def test_widget_fits_the_gzipped_size_budget():
    size = len(gzip.compress(WIDGET.read_bytes(), compresslevel=9))
    assert size <= BUDGET, f"static/widget.js is {size} bytes gzipped; the budget is {BUDGET}"


def test_widget_uses_no_eval_or_html_parsing():
    source = WIDGET.read_text()
    for forbidden in ("eval(", "new Function", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert forbidden not in source, f"widget.js uses {forbidden}"
