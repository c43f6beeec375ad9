"""Helpers for the production-mode tests: services, ports, processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REDIS_URL = os.environ.get("PERSONALIZE_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
BROKER_URL = os.environ.get("PERSONALIZE_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    reason = f"{name} is not reachable at {host}:{port}"
    if os.environ.get("PERSONALIZE_REQUIRE_SERVICES") == "1":
        pytest.fail(reason + "; PERSONALIZE_REQUIRE_SERVICES=1 makes this an error")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(app, **settings: str) -> dict[str, str]:
    """The environment for a personalize process on the test app's database and instance folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONALIZE_")}
    env.update({
        "PERSONALIZE_DATABASE_URL": app.config["DATABASE_URL"],
        "PERSONALIZE_INSTANCE_PATH": app.instance_path,
        "PERSONALIZE_AUTO_MIGRATE": "false",
        "PERSONALIZE_SECRET_KEY": app.config["SECRET_KEY"],
        "PERSONALIZE_SYNC_SCHEDULER": "false",
    })
    env.update({f"PERSONALIZE_{k}": v for k, v in settings.items()})
    return env


def personalize_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from personalize.cli import main; main()", *args]


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.1)
    detail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{detail}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
