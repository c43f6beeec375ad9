"""Test and learn: the dashboard (impressions, CTR, attributed orders and revenue, lift over
the holdout, as charts) and the holdout setting."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from ..insights import MAX_SHARE, holdout_share, set_holdout_share, site_report
from ..insights.charts import bar_chart, compact, hbar_chart, interval_chart, line_chart
from ..models import Site
from . import bp
from .access import site_page

WINDOWS = (7, 30, 90)


def _charts(report) -> dict:
    labels = [d.strftime("%d %b") for d in report.days]
    personal, held = report.by_day_group["personalized"], report.by_day_group["holdout"]
    cur = report.currency

    def pct(v: float) -> str:
        return f"{v * 100:.1f} %"

    def money(v: float) -> str:
        return f"{compact(v)} {cur}".strip()

    charts = {
        "impressions": bar_chart("Recommendation lists shown per day", labels, [report.by_day[d].impressions for d in report.days], fmt=compact),
        "ctr": line_chart("Click-through rate per day", labels, {
            "personalized": [personal[d].ctr for d in report.days],
            "holdout": [held[d].ctr for d in report.days],
        }, fmt=pct),
        "revenue": bar_chart("Attributed revenue per day", labels, [report.by_day[d].revenue for d in report.days], fmt=money, series=2),
        "orders": bar_chart("Attributed orders per day", labels, [report.by_day[d].orders for d in report.days], series=1),
        "slot_ctr": hbar_chart("Click-through rate per slot", [(slot, t.ctr) for slot, t in report.by_slot.items() if t.impressions], fmt=pct),
        "slot_revenue": hbar_chart("Attributed revenue per slot", [(slot, t.revenue) for slot, t in report.by_slot.items()], fmt=money, series=2),
    }
    rows = []
    for name, comp in (("Conversion rate", report.conversion), ("Revenue per visitor", report.revenue_per_visitor)):
        if comp is not None and comp.lift is not None and comp.lift_low is not None:
            rows.append((name, comp.lift_low, comp.lift, comp.lift_high))
    if rows:
        charts["lift"] = interval_chart("Lift of personalized over holdout, with the 95 % intervals of the table and the verdict", rows, fmt=lambda v: f"{v * 100:+.0f} %")
    return charts


@bp.get("/sites/<int:site_id>/dashboard")
@site_page()
def dashboard(s: Site):
    days = request.args.get("days", type=int) or 30
    if days not in WINDOWS:
        days = 30
    report = site_report(s.id, days=days)
    return render_template(
        "admin/dashboard.html", site=s, report=report, charts=_charts(report), days=days, windows=WINDOWS,
        share=holdout_share(s), max_share=MAX_SHARE, demo_holdout=demo_holdout(s),
    )


def demo_holdout(s: Site) -> float | None:
    """The holdout share the demo's simulated traffic used, on the demo's site (None elsewhere)."""
    share = (s.settings or {}).get("demo_holdout")
    return float(share) if isinstance(share, int | float) and share > 0 else None


@bp.post("/sites/<int:site_id>/holdout")
@site_page(edit=True)
def holdout(s: Site):
    try:
        share = float(request.form.get("share", "")) / 100.0
        set_holdout_share(s, share)
    except ValueError:
        flash(f"The holdout is a percentage between 0 and {MAX_SHARE * 100:.0f}.", "error")
    else:
        flash(f"Holdout set to {share * 100:g} % of visitors.", "ok")
    return redirect(url_for("admin.dashboard", site_id=s.id))
