"""What an arm changes, and which arm a visitor is in. Plain Python: no database, no Flask.

An arm is a declarative override of how a slot's list is computed::

    {"strategy": "popular"}                        # best sellers instead of personal picks
    {"rules": {"weights": {"item-item": 2.0}}}     # blend weights (and any other rules) on top of the slot's
    {"model_version": 41}                          # a stored model version instead of the newest
    {}                                             # as the shop serves it today (a control)

Assignment depends only on the site, the experiment and the person's assignment key (their
profile's ``assignment_key``, or for someone without a profile yet the key it will get), through a
hash, so a person sees the same arm on every page, in every process and whichever id a request
names them by (visitor id, email, customer id), with nothing stored. The holdout is decided
first: a holdout person never enters an experiment. Lists served in an
experiment carry their arm in the ``rec_id`` (``x<experiment>-<arm>_…``), which the widget
sends back on every impression, click, add-to-cart and order, so all of them attribute to
the arm that was shown.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

STRATEGIES = ("personal", "popular", "similar", "together", "cart", "recent")  # what an arm may serve ("personal": the usual list; the rest: page strategies)
RULE_KEYS = ("pin", "boost", "bury", "exclude", "bought_show", "weights")
BLEND_SOURCES = ("personal", "item-item", "content", "popular", "segment")
MAX_ARMS = 5
MAX_WEIGHT = 10.0
MAX_FACTOR = 100.0
REC_TAG = re.compile(r"^x(\d+)-(\d)_")


class ArmError(ValueError):
    """An arm that cannot be accepted; ``field`` names the offending part."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def _ids(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in value) or len(value) > 200:
        raise ArmError(field, "must be a list of up to 200 product ids")
    return list(dict.fromkeys(value))


def _factors(value: Any, field: str, names=None, high: float = MAX_FACTOR, low: float = 0.0) -> dict[str, float]:
    if not isinstance(value, dict) or len(value) > 200:
        raise ArmError(field, "must be an object of up to 200 names and numbers")
    out = {}
    for key, number in value.items():
        if names is not None and key not in names:
            raise ArmError(f"{field}.{key}", f"is not one of {', '.join(names)}")
        if isinstance(number, bool) or not isinstance(number, int | float) or not low <= float(number) <= high:
            raise ArmError(f"{field}.{key}", f"must be a number from {low:g} to {high:g}")
        out[str(key)] = float(number)
    return out


def clean_override(raw: Any, field: str = "override") -> dict[str, Any]:
    """The override checked and normalised; raises :class:`ArmError` naming the field."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ArmError(field, "must be an object")
    unknown = sorted(set(raw) - {"strategy", "rules", "model_version"})
    if unknown:
        raise ArmError(f"{field}.{unknown[0]}", "is not something an arm can change (strategy, rules, model_version)")
    out: dict[str, Any] = {}
    strategy = raw.get("strategy")
    if strategy not in (None, "", *STRATEGIES):
        raise ArmError(f"{field}.strategy", f"must be one of {', '.join(STRATEGIES)}")
    if strategy:
        out["strategy"] = strategy  # "personal" kept when given: it undoes a rolled-out "popular" (see layered)
    version = raw.get("model_version")
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ArmError(f"{field}.model_version", "must be the number of a stored model version")
        out["model_version"] = version
    rules = raw.get("rules")
    if rules is not None:
        if not isinstance(rules, dict):
            raise ArmError(f"{field}.rules", "must be an object")
        bad = sorted(set(rules) - set(RULE_KEYS))
        if bad:
            raise ArmError(f"{field}.rules.{bad[0]}", f"is not a rule ({', '.join(RULE_KEYS)})")
        clean: dict[str, Any] = {}
        for key in ("pin", "bury", "exclude"):
            if key in rules and (ids := _ids(rules[key], f"{field}.rules.{key}")):
                clean[key] = ids
        if "boost" in rules and (boost := _factors(rules["boost"], f"{field}.rules.boost", low=0.01)):
            clean["boost"] = boost
        if "weights" in rules:
            weights = _factors(rules["weights"], f"{field}.rules.weights", BLEND_SOURCES, MAX_WEIGHT)
            if weights := {k: v for k, v in weights.items() if v != 1.0}:
                clean["weights"] = weights
        if "bought_show" in rules:
            follow = rules["bought_show"]
            if not isinstance(follow, dict) or len(follow) > 200:
                raise ArmError(f"{field}.rules.bought_show", "must be an object of product id → list of product ids")
            if follow := {str(a): _ids(bs, f"{field}.rules.bought_show.{a}") for a, bs in follow.items()}:
                clean["bought_show"] = follow
        if clean:
            out["rules"] = clean
    return out


def hash_point(site_id: int, experiment_id: int, key: str) -> float:
    """The person's fixed point in [0, 1) for this experiment (independent of the holdout's);
    ``key``: their assignment key."""
    digest = hashlib.sha256(f"personalize-experiment:{site_id}:{experiment_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def arm_index(site_id: int, experiment_id: int, visitor: str, arms: int) -> int:
    """Which of ``arms`` equal shares the visitor falls in."""
    return min(int(hash_point(site_id, experiment_id, visitor) * arms), arms - 1)


@dataclass(frozen=True)
class Choice:
    """What decides a list: an experiment's arm (``experiment`` set) or a rolled-out default."""

    override: dict[str, Any]
    experiment: int | None = None
    arm: int | None = None

    @property
    def key(self) -> str:
        """For cache keys: everything that makes this choice's lists differ."""
        return f"{self.experiment}:{self.arm}:{json.dumps(self.override, sort_keys=True)}"

    def tag(self, rec_id: str) -> str:
        """The list's rec_id, carrying the arm when in an experiment."""
        if self.experiment is None:
            return rec_id
        return f"x{self.experiment}-{self.arm}_{rec_id.removeprefix('r_')}"


def choose(settings: dict | None, site_id: int, visitor: str | None, slot: str) -> Choice | None:
    """The running experiment's arm for this person (``visitor``: their assignment key) on this slot, else the slot's rolled-out
    default, else ``None`` (serve as usual). Reads only ``settings["experiments"]``, which
    :mod:`personalize.experiments.store` keeps."""
    mirror = (settings or {}).get("experiments") or {}
    default = (mirror.get("defaults") or {}).get(slot) or {}
    running = (mirror.get("running") or {}).get(slot)
    if running and visitor:
        arms = running.get("arms") or []
        if arms:
            index = arm_index(site_id, int(running["id"]), visitor, len(arms))
            return Choice(layered(default, arms[index]), int(running["id"]), index)
    return Choice(default) if default else None


def layered(base: dict | None, override: dict | None) -> dict[str, Any]:
    """``override`` on top of ``base`` (a slot's rolled-out default): its strategy and model win, its
    rules add to the base's (lists joined, maps merged, its values winning)."""
    out = dict(base or {})
    for key in ("strategy", "model_version"):
        if key in (override or {}):
            out[key] = override[key]
    rules = dict(out.get("rules") or {})
    for key, value in ((override or {}).get("rules") or {}).items():
        if isinstance(value, list):
            rules[key] = list(dict.fromkeys([*(rules.get(key) or []), *value]))
        else:
            rules[key] = {**(rules.get(key) or {}), **value}
    if rules:
        out["rules"] = rules
    return out


def effective(override: dict | None) -> dict[str, Any]:
    """The override without what changes nothing (the personal strategy is the slot as served)."""
    out = {k: v for k, v in (override or {}).items() if v}
    if out.get("strategy") == "personal":
        del out["strategy"]
    return out


def arm_of_rec_id(rec_id: str | None) -> tuple[int, int] | None:
    """``(experiment, arm)`` of a list served in an experiment, from its rec_id."""
    m = REC_TAG.match(rec_id or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


# the rules an arm adds, for the built-in rules plugin to read while this list is computed
_ARM_RULES: contextvars.ContextVar[dict | None] = contextvars.ContextVar("personalize_arm_rules", default=None)


@contextlib.contextmanager
def arm_rules(rules: dict | None) -> Iterator[None]:
    token = _ARM_RULES.set(rules or None)
    try:
        yield
    finally:
        _ARM_RULES.reset(token)


def current_arm_rules() -> dict | None:
    """The rules the arm of the list being computed adds (``None`` outside an experiment)."""
    return _ARM_RULES.get()


def pinned_versions(settings: dict | None) -> set[int]:
    """Model versions a running arm or a rolled-out default serves (their files must stay)."""
    mirror = (settings or {}).get("experiments") or {}
    overrides = [o for running in (mirror.get("running") or {}).values() for o in running.get("arms") or []]
    overrides += list((mirror.get("defaults") or {}).values())
    return {int(o["model_version"]) for o in overrides if (o or {}).get("model_version")}
