"""``personalize new-connector NAME``: a connector package with a passing test.

The files come from ``scaffold_template/``; ``docs/writing-connectors.md`` walks
through exactly what it creates (a test keeps the two the same).
"""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).parent / "scaffold_template"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,27}$")


class ScaffoldError(ValueError):
    pass


def render(name: str) -> dict[str, str]:
    """The files of a connector package for ``name``: relative path -> text."""
    name = name.strip().lower().replace("-", "_")
    if not NAME_RE.match(name):
        raise ScaffoldError("a connector name is 2-28 lower-case letters, digits or _, starting with a letter")
    words = name.split("_")
    values = {
        "__CLASS__": "".join(w.capitalize() for w in words),
        "__TITLE__": " ".join(w.capitalize() for w in words),
        "__DIST__": name.replace("_", "-"),
        "__NAME__": name,
    }

    def fill(text: str) -> str:
        for key, value in values.items():
            text = text.replace(key, value)
        return text

    package = f"personalize_{name}"
    return {
        "pyproject.toml": fill((TEMPLATES / "pyproject.toml.tmpl").read_text()),
        f"{package}/__init__.py": fill((TEMPLATES / "init.py.tmpl").read_text()),
        f"tests/test_{package}.py": fill((TEMPLATES / "test.py.tmpl").read_text()),
    }


def scaffold(name: str, directory: Path | None = None) -> Path:
    """Write the package into ``directory`` (default ``./personalize-<name>``), which must not exist or be empty."""
    files = render(name)
    root = Path(directory or f"personalize-{name.strip().lower().replace('_', '-')}")
    if root.exists() and any(root.iterdir()):
        raise ScaffoldError(f"{root} exists and is not empty")
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root.resolve()
