"""The Dockerfile and compose.yaml, checked against the code they run.

Docker cannot run on the machines these tests run on, so this is a static check: every
``PERSONALIZE_*`` variable the files set is a setting the server reads; every command is a
real ``personalize`` command with real options (parsed by click's own command tree, as the
console script would); the health check asks a route that exists; the image runs as a user
without rights, keeps the instance folder in a volume and carries no secret.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from personalize.cli import cli
from personalize.config import SETTINGS, environment_variable_known, secret_setting
from personalize.logs import redact

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
APP_SERVICES = [name for name, service in COMPOSE["services"].items() if "build" in service or "personalize" in str(service.get("image", ""))]
#: settings whose values carry credentials: never written inline, always from a file
CREDENTIAL_SETTINGS = {name for name in SETTINGS if secret_setting(name)} | {"DATABASE_URL", "BROKER_URL"}


def dockerfile() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the final stage, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        current += raw.rstrip("\\").strip() + " " if raw.endswith("\\") else raw.strip()
        if not raw.endswith("\\") and current.strip():
            word, _, rest = current.strip().partition(" ")
            lines.append((word.upper(), rest.strip()))
            current = ""
    last_from = max(i for i, (word, _) in enumerate(lines) if word == "FROM")
    return lines[last_from:]


def _exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"not the exec form: {arguments}"
    return value


def resolve(args: list[str]) -> click.Command:
    """The command ``personalize <args>`` runs, with every option and argument checked by click (a wrong one raises)."""
    ctx = cli.make_context("personalize", list(args), resilient_parsing=False)
    command: click.Command = cli
    while isinstance(command, click.Group):
        # the sub-command's name: click 8.2 keeps it in _protected_args (protected_args is deprecated), 8.1 in protected_args
        protected = vars(ctx).get("_protected_args", vars(ctx).get("protected_args", []))
        rest = [*protected, *ctx.args]
        assert rest, f"personalize {' '.join(args)}: a group without a command"
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx, resilient_parsing=False)
    return command


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def secret_targets(service: dict) -> dict[str, str]:
    out = {}
    for entry in service.get("secrets") or []:
        if isinstance(entry, str):
            out[entry] = f"/run/secrets/{entry}"
        else:
            out[entry["source"]] = entry.get("target", entry["source"])
            if not out[entry["source"]].startswith("/"):
                out[entry["source"]] = f"/run/secrets/{out[entry['source']]}"
    return out


def test_the_resolver_refuses_what_click_refuses():
    assert resolve(["serve", "--host", "0.0.0.0", "--port", "5000"]).name == "serve"
    assert resolve(["db", "upgrade"]).name == "upgrade"
    for wrong in (["serve", "--bind", "0.0.0.0"], ["serve", "--port", "http"], ["wrker"], ["db", "migrate"], ["worker", "--beats"]):
        with pytest.raises(click.ClickException):
            resolve(wrong)


def test_the_compose_set_is_the_production_set():
    services = COMPOSE["services"]
    assert {"web", "worker", "db", "redis", "rabbitmq"} <= set(services)
    assert services["db"]["image"].startswith("postgres:") and services["redis"]["image"].startswith("redis:")
    assert services["rabbitmq"]["image"].startswith("rabbitmq:")
    web = environment(services["web"])
    assert web["PERSONALIZE_REDIS_URL"].startswith("redis://redis:")
    assert {"PERSONALIZE_DATABASE_URL_FILE", "PERSONALIZE_BROKER_URL_FILE"} <= set(web)
    assert set(APP_SERVICES) >= {"web", "worker", "migrate"}


@pytest.mark.parametrize("name", sorted(COMPOSE["services"]))
def test_every_personalize_variable_is_a_known_setting(name):
    env = environment(COMPOSE["services"][name])
    unknown = [variable for variable in env if variable.startswith("PERSONALIZE_") and not environment_variable_known(variable)]
    assert not unknown, f"{name} sets variables the server does not read: {unknown}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_no_secret_is_written_in_the_compose_file(name):
    service = COMPOSE["services"][name]
    env = environment(service)
    targets = secret_targets(service)
    for variable, value in env.items():
        setting = variable.removeprefix("PERSONALIZE_")
        assert setting not in CREDENTIAL_SETTINGS, f"{variable} is set inline; use {variable}_FILE and a secret"
        assert redact(value) == value or value.startswith("${"), f"{variable}={value} looks like a credential"
        if setting.endswith("_FILE"):
            assert setting.removesuffix("_FILE") in SETTINGS
            assert value in targets.values(), f"{variable} points at {value}, which is none of the service's secrets"
    for secret in targets:
        declared = COMPOSE["secrets"][secret]
        assert declared["file"].startswith("./secrets/"), f"secret {secret} must come from ./secrets/"
    gitignore = (ROOT / ".gitignore").read_text().splitlines()
    dockerignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "secrets/" in gitignore and "secrets" in dockerignore and ".env" in gitignore


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_command_is_a_real_command_with_real_options(name):
    entrypoint = _exec_form(dict(dockerfile())["ENTRYPOINT"])
    assert entrypoint == ["personalize"]
    command = COMPOSE["services"][name]["command"]
    assert isinstance(command, list), "the exec form: no shell between Docker and the server"
    resolve(command)


def test_one_scheduler_web_after_the_migration_and_instance_folder_as_a_volume():
    services = COMPOSE["services"]
    beats = [name for name in APP_SERVICES if "--beat" in services[name]["command"]]
    assert beats == ["worker"], "exactly one worker runs the scheduler"
    assert resolve(services["migrate"]["command"]).name == "upgrade"
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert {"db", "redis", "rabbitmq"} <= set(services[name]["depends_on"])
    instance = dict(re.findall(r"(\w+)=(\S+)", dict(dockerfile())["ENV"]))["PERSONALIZE_INSTANCE_PATH"]
    for name in APP_SERVICES:
        service = services[name]
        assert environment(service).get("PERSONALIZE_INSTANCE_PATH", instance) == instance
        mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}
        assert mounts.get(instance) in COMPOSE["volumes"], f"{name}: the instance folder {instance} is not a named volume"
    assert f'VOLUME ["{instance}"]' in "\n".join(f"{w} {a}" for w, a in dockerfile())


def test_the_image_runs_the_server_without_rights():
    steps = dockerfile()
    words = [word for word, _ in steps]
    user = [arguments for word, arguments in steps if word == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0"), "the last USER is not root"
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN"), "nothing runs as root after USER"
    assert any("[production]" in arguments for word, arguments in steps if word == "RUN"), "the production extras are installed"
    cmd = _exec_form(dict(steps)["CMD"])
    assert resolve(cmd).name == "serve"
    port = cmd[cmd.index("--port") + 1]
    assert dict(steps)["EXPOSE"] == port


def test_the_health_check_asks_the_health_endpoint(app):
    steps = dict(dockerfile())
    check = steps["HEALTHCHECK"]
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    probe = " ".join(_exec_form(command))
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\S+?)'", probe)
    assert url, probe
    assert url.group(1) == steps["EXPOSE"]
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert url.group(2) == "/api/v1/health" and url.group(2) in rules
    assert app.test_client().get(url.group(2)).status_code == 200
    for name in ("worker", "migrate"):  # no web server inside: no health check that would mark them unhealthy
        assert COMPOSE["services"][name]["healthcheck"] == {"disable": True}


def test_the_image_carries_no_secret():
    for word, arguments in dockerfile():
        if word in ("ENV", "ARG"):
            for name in re.findall(r"(?:^|\s)(\w+)=", arguments) + ([arguments.split("=")[0]] if word == "ARG" else []):
                assert name.removeprefix("PERSONALIZE_") not in CREDENTIAL_SETTINGS, f"{word} {name} bakes a secret into the image"
        if word == "COPY":
            sources = shlex.split(arguments)[:-1]
            assert not any(part in ("instance", "secrets", ".env", ".") or part.startswith(("instance/", "secrets/")) for part in sources), arguments
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".venv", "instance", "secrets", ".env", ".git"} <= set(ignored)
