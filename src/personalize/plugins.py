"""The plugin manager: built-ins, installed packages and a plugins folder.

Plugins come from three places, in this order:

1. built-in modules listed in :data:`DEFAULT_PLUGINS` (core features written as plugins);
2. packages that declare an entry point in the ``personalize`` group;
3. ``.py`` files in the folder named by the ``PLUGINS_DIR`` setting.

``LOAD_PLUGINS`` (comma-separated names) restricts 2 and 3 to an allow-list. A
plugin that fails to import or implements a hook that does not exist is reported
by name in :attr:`PluginRegistry.errors` and skipped; it never stops the server.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy
from flask import current_app

from . import hookspecs

log = logging.getLogger(__name__)

DEFAULT_PLUGINS = ("personalize.builtins.rules", "personalize.segments.listener", "personalize.journeys.listener")
ENTRY_POINT_GROUP = "personalize"


@dataclass
class PluginError:
    name: str
    source: str
    error: str


@dataclass
class PluginRegistry:
    """A plugin manager plus what was loaded from where, and what failed."""

    pm: pluggy.PluginManager
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (source, version)
    errors: list[PluginError] = field(default_factory=list)
    #: notification calls that raised, per plugin name, and the last one's error (see :func:`notify_each`)
    failures: dict[str, int] = field(default_factory=dict)
    last_failure: dict[str, str] = field(default_factory=dict)

    @property
    def hook(self):
        return self.pm.hook

    def describe(self) -> list[dict[str, Any]]:
        """Each loaded plugin with its source, version and the hooks it implements."""
        out = []
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda np: np[0]):
            if plugin is None:
                continue
            source, version = self.sources.get(name, ("unknown", ""))
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            out.append({"name": name, "source": source, "version": version, "hooks": hooks})
        return out


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("personalize")
    pm.add_hookspecs(hookspecs)
    return pm


def _register(registry: PluginRegistry, plugin: Any, name: str, source: str, version: str = "") -> None:
    try:
        registry.pm.register(plugin, name=name)
        registry.pm.check_pending()
    except Exception as exc:  # a broken plugin must never take the server down
        if registry.pm.is_registered(plugin):
            registry.pm.unregister(plugin)
        registry.errors.append(PluginError(name, source, f"{type(exc).__name__}: {exc}"))
        log.error("plugin %s (%s) skipped: %s", name, source, exc)
        return
    registry.sources[name] = (source, version)


def _allowed(name: str, allow: set[str] | None) -> bool:
    return allow is None or name in allow


def load_plugins(plugins_dir: str | None = None, allow_list: str | None = None) -> PluginRegistry:
    """Build a plugin registry from built-ins, entry points and a plugins folder."""
    registry = PluginRegistry(_new_manager())
    allow = {n.strip() for n in allow_list.split(",") if n.strip()} if allow_list else None

    for module_name in DEFAULT_PLUGINS:
        _register(registry, importlib.import_module(module_name), module_name, "built-in")

    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if not _allowed(ep.name, allow):
            continue
        dist = ep.dist.name if ep.dist else ""
        version = ep.dist.version if ep.dist else ""
        try:
            plugin = ep.load()
        except Exception:
            err = traceback.format_exc(limit=2).strip().splitlines()[-1]
            registry.errors.append(PluginError(ep.name, f"package {dist}", err))
            log.error("plugin %s from package %s failed to import: %s", ep.name, dist, err)
            continue
        _register(registry, plugin, ep.name, f"package {dist}", version)

    if plugins_dir:
        folder = Path(plugins_dir)
        if not folder.is_dir():
            registry.errors.append(PluginError(str(folder), "plugins folder", "not a folder"))
        else:
            for path in sorted(folder.glob("*.py")):
                if not _allowed(path.stem, allow):
                    continue
                _load_file(registry, path)
    return registry


def _load_file(registry: PluginRegistry, path: Path) -> None:
    module_name = f"personalize_plugins_dir.{path.stem}"
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    except Exception:
        sys.modules.pop(module_name, None)
        err = traceback.format_exc(limit=2).strip().splitlines()[-1]
        registry.errors.append(PluginError(path.stem, f"file {path}", err))
        log.error("plugin file %s failed to import: %s", path, err)
        return
    _register(registry, module, path.stem, f"file {path}")


def registry() -> PluginRegistry:
    """The current application's plugin registry."""
    return current_app.extensions["personalize.plugins"]


def hooks():
    """Shortcut for ``registry().hook`` — call hooks with keyword arguments only."""
    return registry().hook


def notify(name: str, **kwargs: Any) -> None:
    """Tell the plugins implementing hook ``name`` that something happened (see :func:`notify_each`)."""
    notify_each(name, [kwargs])


def notify_each(name: str, calls: list[dict[str, Any]]) -> None:
    """Call notification hook ``name`` once per keyword set in ``calls``, each plugin on its own.

    Notifications (``event_received``, ``segment_membership_changed``, ``model_trained``…) tell
    plugins about work that is committed already. pluggy stops at the first implementation that
    raises and hands its error to the caller; here a failing plugin is logged by name and
    counted in :attr:`PluginRegistry.failures`, the others are still called, and the work that
    was done never turns into an error for whoever asked for it (an API client, a sync, a job).
    """
    reg = registry()
    impls = [i for i in reversed(getattr(reg.pm.hook, name).get_hookimpls()) if not (i.hookwrapper or i.wrapper)]
    for kwargs in calls if impls else ():
        for impl in impls:
            try:
                impl.function(*[kwargs[arg] for arg in impl.argnames])
            except Exception as exc:
                reg.failures[impl.plugin_name] = reg.failures.get(impl.plugin_name, 0) + 1
                reg.last_failure[impl.plugin_name] = f"{name}: {type(exc).__name__}: {exc}"[:300]
                log.exception("plugin %s failed in %s", impl.plugin_name, name)
