"""What the wheel holds and what pyproject.toml promises: the licence, type information, one version,
and every third-party package the code imports declared as a dependency."""

from __future__ import annotations

import ast
import email
import importlib.metadata
import re
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import personalize

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PLUGIN_PACKAGES = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").exists())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel, built offline with hatchling's own API (what ``pip wheel`` and ``python -m build`` call)."""
    from hatchling.builders.wheel import WheelBuilder

    out = tmp_path_factory.mktemp("wheel")
    [path] = list(WheelBuilder(str(ROOT)).build(directory=str(out), versions=["standard"]))
    with zipfile.ZipFile(path) as built:
        yield built


def _metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.message_from_bytes(wheel.read(name))


def test_the_wheel_holds_the_licence_type_marker_widget_and_plugins(wheel):
    names = set(wheel.namelist())
    licence = [n for n in names if re.fullmatch(r"personalize-[^/]+\.dist-info/licenses/LICENSE", n)]
    assert licence, "LICENSE is not in the wheel's dist-info"
    assert wheel.read(licence[0]) == (ROOT / "LICENSE").read_bytes()
    assert "personalize/py.typed" in names, "type checkers ignore an installed package without py.typed (PEP 561)"
    assert "personalize/static/widget.js" in names
    assert wheel.read("personalize/static/widget.js") == (ROOT / "static" / "widget.js").read_bytes()
    for package in PLUGIN_PACKAGES:
        assert f"{package}/__init__.py" in names, f"the first-party plugin {package} is missing from the wheel"
    # what the server cannot run without: its migrations and the admin's templates
    assert any(n.startswith("personalize/migrations/versions/") for n in names)
    assert any(n.startswith("personalize/admin/templates/") for n in names)


def test_the_wheel_carries_the_one_version_and_the_licence_name(wheel):
    meta = _metadata(wheel)
    assert meta["Version"] == personalize.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    requires = {re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0].lower() for r in meta.get_all("Requires-Dist")}
    assert {"click", "werkzeug", "flask", "gunicorn"} <= requires
    entry_points = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "personalize = personalize.cli:main" in wheel.read(entry_points[0]).decode()


def test_the_version_has_one_source():
    assert "version" not in PYPROJECT["project"], "the version is written once, in personalize/__init__.py"
    assert "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "src/personalize/__init__.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+([a-z]+\d+)?", personalize.__version__)


def test_the_licence_is_the_full_apache_2_text():
    text = (ROOT / "LICENSE").read_text()
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    for part in ("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION", "9. Accepting Warranty or Additional Liability",
                 "END OF TERMS AND CONDITIONS", "APPENDIX: How to apply the Apache License to your work."):
        assert part in text, part
    assert len(text.splitlines()) >= 200, "the whole licence, not a summary"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(requirements: list[str]) -> set[str]:
    return {_normal(re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0]) for r in requirements}


def _imported_modules(folder: Path) -> dict[str, set[str]]:
    """Top-level modules imported anywhere under ``folder`` (absolute imports), with the files importing each."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        if ".venv" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def _undeclared(folders: list[Path], allowed: set[str]) -> list[str]:
    first_party = {"personalize", *PLUGIN_PACKAGES}
    distributions = importlib.metadata.packages_distributions()
    problems = []
    for folder in folders:
        local = {p.stem for p in folder.rglob("*.py")} | {p.name for p in folder.rglob("*") if p.is_dir()}
        for module, files in sorted(_imported_modules(folder).items()):
            if module in sys.stdlib_module_names or module in first_party or module in local or module == "__future__":
                continue
            dists = {_normal(d) for d in distributions.get(module, [])}
            if not dists:
                problems.append(f"{module} (imported by {sorted(files)[0]}) is not installed at all")
            elif not dists & allowed:
                problems.append(f"{module} (distribution {', '.join(sorted(dists))}, imported by {sorted(files)[0]})")
    return problems


def test_every_package_the_server_imports_is_a_declared_dependency():
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    runtime = _declared(project["dependencies"]) | _declared(extras["production"]) | _declared(extras["postgres"])
    problems = _undeclared([ROOT / "src", ROOT / "plugins"], runtime)
    assert not problems, "imported directly but not declared in pyproject.toml (dependencies or the production extra): " + "; ".join(problems)


def test_every_package_the_tests_import_is_a_declared_test_dependency():
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    allowed = _declared(project["dependencies"]) | _declared(extras["test"])
    problems = _undeclared([ROOT / "tests", ROOT / "bench"], allowed)
    assert not problems, "imported by tests but not in the test extra of pyproject.toml: " + "; ".join(problems)
