"""Experiments of a site: the list with a form to set one up (versions of a page slot's list,
no JSON needed), and one page per experiment with per-version figures, a chart of each
challenger against the current version, start/stop and roll out."""

from __future__ import annotations

import re

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select

from ..catalog.currency import site_currency
from ..db import db
from ..experiments.arms import BLEND_SOURCES, ArmError
from ..experiments.models import DRAFT, ROLLED_OUT, RUNNING, STOPPED
from ..experiments.report import experiment_report
from ..experiments.store import (
    create_experiment,
    delete_experiment,
    experiments_of,
    get_experiment,
    roll_out,
    start_experiment,
    stop_experiment,
)
from ..insights.charts import hbar_chart, interval_chart
from ..insights.experiments import DEFAULT_TARGET
from ..models import ModelVersion, Site
from ..validation import whole_number
from . import SITE_TABS, bp
from .access import found, site_page
from .formatting import money, percent, sentence
from .recommendations import known_slots

SITE_TABS.append({"endpoint": "admin.experiments", "label": "Experiments", "order": 5})

LETTERS = "ABCDE"
VERSION_ROWS = 4
STRATEGY_LABELS = {"personal": "Picks for each visitor (as today)", "popular": "Best sellers, the same for everyone"}
SOURCE_LABELS = {"personal": "their own history", "item-item": "bought together", "content": "similar descriptions",
                 "popular": "best sellers", "segment": "customers like them"}
METRIC_LABELS = {"revenue_per_visitor": "Revenue per visitor", "conversion": "Share of visitors who buy",
                 "click_rate": "Share of visitors who click a recommendation"}
STATUS_LABELS = {DRAFT: "not started", RUNNING: "running", STOPPED: "stopped", ROLLED_OUT: "rolled out"}


def _ids(text: str) -> list[str]:
    return list(dict.fromkeys(t for t in (text or "").replace(",", " ").split() if t))


def definition_from_form(form) -> dict:
    """The experiment the form describes, in the shape :func:`create_experiment` checks."""
    arms = []
    for i in range(VERSION_ROWS):
        name = (form.get(f"arm{i}_name") or "").strip()
        if not name:
            continue
        override: dict = {"strategy": form.get(f"arm{i}_strategy") or "personal"}
        model = (form.get(f"arm{i}_model") or "").strip()
        if model:
            if whole_number(model) is None:
                raise ArmError(f"version {LETTERS[i]}: model", "choose a stored model")
            override["model_version"] = int(model)
        rules: dict = {}
        weights = {}
        for source in BLEND_SOURCES:
            raw = (form.get(f"arm{i}_weight_{source}") or "").strip()
            if raw:
                try:
                    weights[source] = float(raw)
                except ValueError:
                    raise ArmError(f"version {LETTERS[i]}: weight of {SOURCE_LABELS[source]}", f"{raw!r} is not a number") from None
        if weights:
            rules["weights"] = weights
        if exclude := _ids(form.get(f"arm{i}_exclude") or ""):
            rules["exclude"] = exclude
        if rules:
            override["rules"] = rules
        arms.append({"name": name, "override": override})
    target = (form.get("target_visitors") or "").strip().replace(",", "")
    return {
        "name": form.get("name") or "", "slot": (form.get("slot") or "").strip() or "home", "metric": form.get("metric") or "revenue_per_visitor",
        "target_visitors": whole_number(target) if whole_number(target) is not None else (target or DEFAULT_TARGET), "arms": arms,
    }


def _friendly(message: str) -> str:
    """A validation message about ``arms[1].override.rules.weights.content`` in the form's words."""
    for i, letter in enumerate(LETTERS):
        message = message.replace(f"arms[{i}].override.rules.weights.", f"version {letter}: weight of ")
        message = message.replace(f"arms[{i}].override.model_version", f"version {letter}: model")
        message = message.replace(f"arms[{i}].override.rules.exclude", f"version {letter}: never show")
        message = message.replace(f"arms[{i}].override.", f"version {letter}: ").replace(f"arms[{i}].", f"version {letter}: ")
    for source, label in SOURCE_LABELS.items():
        message = message.replace(f"weight of {source}:", f"weight of {label}:")
    message = message.replace("target_visitors:", "visitors per version:")
    return re.sub(r"^arms: must be a list of 2 to (\d) arms.*", r"versions: give names to two versions or more (A is the one the others are compared against)", message)


def describe_override(override: dict, versions: dict[int, str]) -> str:
    """What a version shows, in a sentence."""
    parts = [STRATEGY_LABELS.get(override.get("strategy", "personal"), override.get("strategy", ""))]
    rules = override.get("rules") or {}
    if rules.get("weights"):
        parts.append("mix: " + ", ".join(f"{SOURCE_LABELS.get(k, k)} × {v:g}" for k, v in rules["weights"].items()))
    if rules.get("exclude"):
        parts.append("never shows " + ", ".join(rules["exclude"][:5]) + ("…" if len(rules["exclude"]) > 5 else ""))
    if override.get("model_version"):
        parts.append(versions.get(override["model_version"], f"model {override['model_version']}"))
    return "; ".join(parts)


def _model_versions(site_id: int) -> dict[int, str]:
    rows = db.session.execute(select(ModelVersion.id, ModelVersion.created_at).where(ModelVersion.site_id == site_id)
                              .order_by(ModelVersion.id.desc())).all()
    return {vid: f"model trained {created:%Y-%m-%d %H:%M} UTC" for vid, created in rows}


def _list_page(s: Site, form=None, error: str | None = None, status: int = 200):
    return render_template(
        "admin/experiments.html", site=s, experiments=experiments_of(s.id), status_labels=STATUS_LABELS, slots=known_slots(s),
        metrics=METRIC_LABELS, strategies=STRATEGY_LABELS, sources=SOURCE_LABELS, models=_model_versions(s.id), letters=LETTERS,
        rows=VERSION_ROWS, form=form or {}, error=error, default_target=DEFAULT_TARGET,
    ), status


@bp.get("/sites/<int:site_id>/experiments")
@site_page()
def experiments(s: Site):
    return _list_page(s)


@bp.post("/sites/<int:site_id>/experiments")
@site_page(edit=True)
def experiments_create(s: Site):
    try:
        experiment = create_experiment(s, definition_from_form(request.form))
    except ArmError as exc:
        db.session.rollback()
        return _list_page(s, request.form, sentence(_friendly(str(exc))), 400)
    flash(f"Experiment “{experiment.name}” is set up. Nobody sees it until you start it.", "ok")
    return redirect(url_for("admin.experiments_show", site_id=s.id, experiment_id=experiment.id))


def _fmt(metric: str, currency: str):
    if metric == "revenue_per_visitor":
        return lambda v: money(v, currency)
    return lambda v: percent(v, 2)


def headline(report) -> str:
    """The experiment's state in one sentence for the owner."""
    e = report.experiment
    metric = METRIC_LABELS[e.metric].lower()
    if e.status == DRAFT:
        return "Not started: nobody sees these versions yet."
    if report.visitors == 0:
        return "No visitor has seen this experiment's lists yet."
    leader = report.leader()
    if leader is not None:
        c = leader.against_control[e.metric]
        lift = f"{percent(c.lift, 1, True)} (between {percent(c.lift_low, 1, True)} and {percent(c.lift_high, 1, True)})" if c.lift_low is not None else ""
        return f"Version {LETTERS[leader.index]} “{leader.name}” does better than {LETTERS[0]} on {metric}: {lift}. You can roll it out."
    behind = [a for a in report.arms[1:] if a.against_control.get(e.metric) and a.against_control[e.metric].verdict == "worse"]
    early = all(a.against_control[e.metric].verdict == "early" for a in report.arms[1:])
    if early:
        return f"Too early to tell: each version needs at least 100 visitors, and a few who {'buy' if e.metric != 'click_rate' else 'click'}."
    if behind and len(behind) == len(report.arms) - 1:
        return f"Every new version does worse than {LETTERS[0]} on {metric}."
    return f"No clear difference on {metric} yet. The ranges below narrow as more visitors come; looking every day is fine."


@bp.get("/sites/<int:site_id>/experiments/<int:experiment_id>")
@site_page()
def experiments_show(s: Site, experiment_id: int):
    experiment = found(get_experiment(s.id, experiment_id), "experiment")
    report = experiment_report(experiment)
    report.currency = report.currency or site_currency(s)
    fmt = _fmt(experiment.metric, report.currency)
    label = METRIC_LABELS[experiment.metric]
    bars = hbar_chart(f"{label} per version", [(f"{LETTERS[a.index]} {a.name}"[:18], getattr(a.totals, experiment.metric)) for a in report.arms], fmt)
    rows = [(f"{LETTERS[a.index]} {a.name}"[:22], c.lift_low, c.lift, c.lift_high) for a in report.arms[1:]
            if (c := a.against_control.get(experiment.metric)) is not None and c.lift_low is not None]
    lifts = interval_chart(f"{label}: each version against {LETTERS[0]}, with its always-valid range", rows, lambda v: percent(v, 0, True), clip=1.0) if rows else None
    versions = _model_versions(s.id)
    days = ((report.end - report.start).total_seconds() / 86400) if report.start else 0
    return render_template(
        "admin/experiment.html", site=s, experiment=experiment, report=report, letters=LETTERS, headline=headline(report),
        metrics=METRIC_LABELS, status_labels=STATUS_LABELS, bars=bars, lifts=lifts, days=days, fmt=fmt,
        described=[describe_override(a.override, versions) for a in report.arms],
    )


@bp.post("/sites/<int:site_id>/experiments/<int:experiment_id>/status")
@site_page(edit=True)
def experiments_status(s: Site, experiment_id: int):
    experiment = found(get_experiment(s.id, experiment_id), "experiment")
    action = request.form.get("action") or ""
    try:
        if action == "start":
            start_experiment(s, experiment)
            flash("Started: visitors of this slot are now shared between the versions (the holdout stays out).", "ok")
        elif action == "stop":
            stop_experiment(s, experiment)
            flash("Stopped: everyone sees the slot as before. You can still roll out a version.", "ok")
        elif action == "rollout":
            arm = request.form.get("arm") or ""
            roll_out(s, experiment, whole_number(arm) if whole_number(arm) is not None else arm)
            flash(f"Version {LETTERS[experiment.winner]} “{experiment.arms[experiment.winner]['name']}” is now what everyone sees "
                  f"on the {experiment.slot} slot. The experiment has ended.", "ok")
        elif action == "delete":
            name = experiment.name
            delete_experiment(s, experiment)
            flash(f"Experiment “{name}” deleted.", "ok")
            return redirect(url_for("admin.experiments", site_id=s.id))
        else:
            raise ArmError("action", "choose start, stop, rollout or delete")
    except ArmError as exc:
        db.session.rollback()
        flash(sentence(_friendly(str(exc))), "error")
        return redirect(url_for("admin.experiments_show", site_id=s.id, experiment_id=experiment_id))
    return redirect(url_for("admin.experiments_show", site_id=s.id, experiment_id=experiment_id))
