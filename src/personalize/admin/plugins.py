"""What plugins are loaded, from where, their versions and hooks, and the ones that failed."""

from __future__ import annotations

from flask import render_template

from .. import hookspecs
from ..plugins import registry
from . import bp
from .access import login_required


@bp.get("/plugins")
@login_required
def plugins():
    reg = registry()
    specs = sorted(name for name in dir(hookspecs) if not name.startswith("_") and hasattr(getattr(hookspecs, name), "personalize_spec"))
    failures = [(name, n, reg.last_failure.get(name, "")) for name, n in sorted(reg.failures.items())]
    return render_template("admin/plugins.html", plugins=reg.describe(), errors=reg.errors, specs=specs, failures=failures)
