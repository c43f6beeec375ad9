"""Build the scripts a shop loads: ``widget/*.js`` (readable source) → ``static/*.js`` (served).

The build only removes comments and white space (rjsmin, pinned in pyproject's ``test``
extra): names, statements and their order stay as written, so the served file reads like the
source without its comments, and the result is byte-for-byte reproducible. The ``/*! … */``
header survives and says where the source is.

    python widget/build.py           # write static/widget.js and static/capture.js
    python widget/build.py --check   # exit 1 if a committed build differs from its source

``tests/browser/test_widget_size.py`` runs the check, and measures the built files against
the size budget.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("widget.js", "capture.js")


def built(name: str) -> str:
    import rjsmin

    source = (ROOT / "widget" / name).read_text(encoding="utf-8")
    return rjsmin.jsmin(source, keep_bang_comments=True).strip() + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name in SOURCES:
        target = ROOT / "static" / name
        text = built(name)
        if check:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            target.parent.mkdir(exist_ok=True)
            target.write_text(text, encoding="utf-8")
    if stale:
        print(f"static/{', static/'.join(stale)} differ from widget/: run `python widget/build.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
