"""The widget's weight budget (it loads on every page of a shop), and its build.

``static/widget.js`` is what shops load and what is measured; it is built from the readable
``widget/widget.js`` by ``widget/build.py`` (comments and white space removed). The data-layer
capture lives in ``static/capture.js``, loaded only by shops that ask for it.
"""

import gzip
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WIDGET = ROOT / "static" / "widget.js"
CAPTURE = ROOT / "static" / "capture.js"
BUDGET = 6144  # bytes, gzip -9
CAPTURE_BUDGET = 2048  # bytes, gzip -9: only for shops with data-capture


def gzipped(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9))


def test_widget_fits_the_gzipped_size_budget():
    size = gzipped(WIDGET)
    assert size <= BUDGET, f"static/widget.js is {size} bytes gzipped; the budget is {BUDGET}"


def test_capture_script_fits_its_own_budget():
    size = gzipped(CAPTURE)
    assert size <= CAPTURE_BUDGET, f"static/capture.js is {size} bytes gzipped; its budget is {CAPTURE_BUDGET}"


def test_committed_build_matches_the_readable_source():
    """A change to widget/*.js without `python widget/build.py` (or an edit of static/*.js by hand) fails here."""
    run = subprocess.run([sys.executable, str(ROOT / "widget" / "build.py"), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_widget_uses_no_eval_or_html_parsing():
    for path in (WIDGET, CAPTURE, ROOT / "widget" / "widget.js", ROOT / "widget" / "capture.js"):
        source = path.read_text()
        for forbidden in ("eval(", "new Function", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert forbidden not in source, f"{path.name} uses {forbidden}"
