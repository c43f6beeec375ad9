"""Create, start, stop and roll out experiments.

The table is the record; the running experiments and the rolled-out winners are also
mirrored into the site's settings (``settings["experiments"]``), which every
recommendation request reads already, so choosing an arm costs no query and a change
shows wherever the site's settings show.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from ..db import db
from ..insights.experiments import DEFAULT_TARGET, METRICS
from ..models import ModelVersion, Site, utcnow
from .arms import MAX_ARMS, ArmError, clean_override, effective, layered
from .models import DRAFT, ROLLED_OUT, RUNNING, STOPPED, Experiment

SLOT = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
MIN_TARGET, MAX_TARGET = 100, 10_000_000


class ExperimentError(ArmError):
    """A request that cannot be done: ``field`` names the culprit, ``status`` the HTTP status."""

    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(field, message)
        self.status = status


def _text(data: dict, key: str, max_len: int, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise ExperimentError(key, "is required")
    value = value.strip()
    if len(value) > max_len:
        raise ExperimentError(key, f"must be at most {max_len} characters")
    return value


def clean_definition(site_id: int, data: Any) -> dict[str, Any]:
    """A new experiment's name, slot, arms, metric and planned size, checked; raises
    :class:`ExperimentError` naming the field."""
    if not isinstance(data, dict):
        raise ExperimentError("", "send a JSON object")
    name = _text(data, "name", 120)
    slot = _text(data, "slot", 64, "home")
    if not SLOT.match(slot):
        raise ExperimentError("slot", "must be at most 64 letters, digits or _ . : -")
    metric = data.get("metric", "revenue_per_visitor")
    if metric not in METRICS:
        raise ExperimentError("metric", f"must be one of {', '.join(METRICS)}")
    target = data.get("target_visitors", DEFAULT_TARGET)
    if isinstance(target, bool) or not isinstance(target, int) or not MIN_TARGET <= target <= MAX_TARGET:
        raise ExperimentError("target_visitors", f"must be a whole number from {MIN_TARGET:,} to {MAX_TARGET:,}")
    arms = data.get("arms")
    if not isinstance(arms, list) or not 2 <= len(arms) <= MAX_ARMS:
        raise ExperimentError("arms", f"must be a list of 2 to {MAX_ARMS} arms, the first one the control")
    clean, names = [], set()
    for i, arm in enumerate(arms):
        if not isinstance(arm, dict):
            raise ExperimentError(f"arms[{i}]", "must be an object with a name and an override")
        arm_name = _text(arm, "name", 60, "") if arm.get("name") else ""
        if not arm_name:
            raise ExperimentError(f"arms[{i}].name", "is required")
        if arm_name.lower() in names:
            raise ExperimentError(f"arms[{i}].name", "is used by another arm")
        names.add(arm_name.lower())
        unknown = sorted(set(arm) - {"name", "override"})
        if unknown:
            raise ExperimentError(f"arms[{i}].{unknown[0]}", "is not part of an arm (name, override)")
        try:
            override = clean_override(arm.get("override"), f"arms[{i}].override")
        except ArmError as exc:
            raise ExperimentError(exc.field, exc.message) from None
        version = override.get("model_version")
        if version is not None and db.session.scalar(
            select(ModelVersion.id).where(ModelVersion.id == version, ModelVersion.site_id == site_id)
        ) is None:
            raise ExperimentError(f"arms[{i}].override.model_version", f"there is no stored model version {version} for this shop")
        clean.append({"name": arm_name, "override": override})
    return {"name": name, "slot": slot, "metric": metric, "target_visitors": target, "arms": clean}


def create_experiment(site: Site, data: Any) -> Experiment:
    """A new experiment in draft (nobody sees it until it is started)."""
    experiment = Experiment(site_id=site.id, status=DRAFT, **clean_definition(site.id, data))
    db.session.add(experiment)
    db.session.commit()
    return experiment


def experiments_of(site_id: int) -> list[Experiment]:
    return list(db.session.scalars(select(Experiment).where(Experiment.site_id == site_id).order_by(Experiment.id.desc())))


def get_experiment(site_id: int, experiment_id: int) -> Experiment | None:
    experiment = db.session.get(Experiment, experiment_id)
    return experiment if experiment is not None and experiment.site_id == site_id else None


def _mirror(site: Site) -> None:
    """Write the site's running experiments and rolled-out defaults into its settings."""
    settings = dict(site.settings or {})
    mirror = dict(settings.get("experiments") or {})
    running = db.session.scalars(select(Experiment).where(Experiment.site_id == site.id, Experiment.status == RUNNING)).all()
    mirror["running"] = {e.slot: {"id": e.id, "arms": [arm["override"] for arm in e.arms]} for e in running}
    mirror.setdefault("defaults", {})
    settings["experiments"] = mirror
    site.settings = settings


def start_experiment(site: Site, experiment: Experiment) -> Experiment:
    """Visitors of the slot (except the holdout) are shared between the arms from now on."""
    if experiment.status != DRAFT:
        raise ExperimentError("status", "only an experiment that has not run yet can be started", 409)
    busy = db.session.scalar(select(Experiment.name).where(
        Experiment.site_id == site.id, Experiment.slot == experiment.slot, Experiment.status == RUNNING))
    if busy is not None:
        raise ExperimentError("slot", f"the experiment “{busy}” already runs on this slot; stop it first", 409)
    experiment.status = RUNNING
    experiment.started_at = utcnow()
    db.session.flush()
    _mirror(site)
    db.session.commit()
    return experiment


def stop_experiment(site: Site, experiment: Experiment) -> Experiment:
    """Everyone sees the slot as before the experiment; the figures stay."""
    if experiment.status != RUNNING:
        raise ExperimentError("status", "the experiment is not running", 409)
    experiment.status = STOPPED
    experiment.stopped_at = utcnow()
    db.session.flush()
    _mirror(site)
    db.session.commit()
    return experiment


def roll_out(site: Site, experiment: Experiment, arm: Any) -> Experiment:
    """Make ``arm`` (its index) what everyone sees on the slot, and end the experiment."""
    if experiment.status not in (RUNNING, STOPPED):
        raise ExperimentError("status", "only a running or stopped experiment can be rolled out", 409)
    if isinstance(arm, bool) or not isinstance(arm, int) or not 0 <= arm < len(experiment.arms):
        raise ExperimentError("arm", f"must be the number of an arm, from 0 to {len(experiment.arms) - 1}")
    experiment.status = ROLLED_OUT
    experiment.winner = arm
    experiment.stopped_at = experiment.stopped_at or utcnow()
    db.session.flush()
    _mirror(site)
    settings = dict(site.settings)
    mirror = dict(settings["experiments"])
    defaults = dict(mirror.get("defaults") or {})
    # what the winner's visitors were shown: its override on top of the slot's earlier default
    override = effective(layered(defaults.get(experiment.slot), experiment.arms[arm]["override"]))
    if override:
        defaults[experiment.slot] = override
    else:
        defaults.pop(experiment.slot, None)  # the control won: the slot stays as the shop serves it
    mirror["defaults"] = defaults
    settings["experiments"] = mirror
    site.settings = settings
    db.session.commit()
    return experiment


def delete_experiment(site: Site, experiment: Experiment) -> None:
    """Only a draft can go (an experiment that ran keeps its record)."""
    if experiment.status != DRAFT:
        raise ExperimentError("status", "only an experiment that never ran can be deleted", 409)
    db.session.delete(experiment)
    db.session.commit()


def rolled_out_default(site: Site, slot: str) -> dict | None:
    return (((site.settings or {}).get("experiments") or {}).get("defaults") or {}).get(slot)


def as_json(experiment: Experiment) -> dict[str, Any]:
    return {
        "id": experiment.id, "name": experiment.name, "slot": experiment.slot, "status": experiment.status,
        "metric": experiment.metric, "target_visitors": experiment.target_visitors, "arms": experiment.arms,
        "winner": experiment.winner, "created_at": _iso(experiment.created_at), "started_at": _iso(experiment.started_at),
        "stopped_at": _iso(experiment.stopped_at),
    }


def _iso(when) -> str | None:
    return when.isoformat(timespec="seconds") + "Z" if when is not None else None


__all__ = ["DRAFT", "ROLLED_OUT", "RUNNING", "STOPPED", "ExperimentError", "as_json", "create_experiment", "delete_experiment",
           "experiments_of", "get_experiment", "roll_out", "start_experiment", "stop_experiment"]
