"""The production files: compose.yaml, the Dockerfile and .dockerignore (issue 20).

This machine has neither a Docker daemon nor the compose plugin, so the files are checked as
text: compose.yaml against the Compose Specification's own JSON schema (vendored in tests/data/,
see tests/data/README.md), its environment against the variables the settings read, and the
Dockerfile's shape (multi-stage, no compiler in the final image, an unprivileged user).
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
SETTINGS = ROOT / "hub" / "settings" / "__init__.py"
ENV_READERS = {"env_str", "env_int", "env_bool", "env_list", "env_choice"}
# The secrets compose.yaml must refuse to start without (`${VAR:?message}`).
SECRETS = {"DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "HASHHUB_CREDENTIAL_KEYS"}
LONG_RUNNING = {"postgres", "redis", "web", "worker", "webhooks", "beat"}
# Compiler toolchains and headers: what only the build stage may install.
COMPILER = re.compile(
    r"\b(build-essential|gcc|g\+\+|clang|cpp|make|cmake|gfortran|rustc|cargo|[\w.+-]+-dev)\b"
)


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def hub_services(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the hub's own image (built from the Dockerfile)."""
    return {name: spec for name, spec in document["services"].items() if "build" in spec}


class UnsetError(Exception):
    """A `${VAR:?message}` whose variable is unset or empty."""


_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)")


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    """Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, $$."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg")
        present = environ.get(name)
        if op in (":-", ":?"):
            present = present or None
        if present is not None:
            return present
        if op in (":?", "?"):
            raise UnsetError(f"{name}: {arg}")
        return arg if op in (":-", "-") else ""

    return _VARIABLE.sub(one, value)


def environment_of(spec: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    raw = spec.get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {name: interpolate(str(value), environ) for name, value in raw.items()}


def operator_environment() -> dict[str, str]:
    """What an operator exports before `docker compose up`: the required variables only."""
    return {
        "DJANGO_SECRET_KEY": "k" * 60,
        "POSTGRES_PASSWORD": "pg-password",
        "HASHHUB_CREDENTIAL_KEYS": "x" * 43 + "=",
        "DJANGO_ALLOWED_HOSTS": "hub.example.org",
        "HASHHUB_SITE_URL": "https://hub.example.org",
    }


def _modules() -> Iterator[Path]:
    """The settings, then every module of the hub's own packages (hub/adapters.py, hub/metrics.py
    and others read a few variables themselves)."""
    yield SETTINGS
    for package in sorted(ROOT.glob("*/__init__.py")):
        if package.parent.name in {"tests", "bench"}:
            continue
        for path in sorted(package.parent.rglob("*.py")):
            if "migrations" not in path.parts and path != SETTINGS:
                yield path


def _is_environ(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def variables_read(path: Path) -> dict[str, ast.Call | None]:
    """Every environment variable a module reads by name: env_* helpers and os.environ."""
    found: dict[str, ast.Call | None] = {}
    tree = ast.parse(path.read_text())
    # Module-level string constants, for reads by a named constant (hub.metrics' MULTIPROC_ENV).
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }
    for node in ast.walk(tree):
        name_node: ast.AST | None = None
        call: ast.Call | None = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            is_getter = called in {"get", "setdefault"} and _is_environ(
                getattr(func, "value", None)
            )
            if called in ENV_READERS or called == "getenv" or is_getter:
                name_node, call = node.args[0], node if called in ENV_READERS else None
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            name_node = node.slice
        if isinstance(name_node, ast.Name) and name_node.id in constants:
            found[constants[name_node.id]] = call
        elif isinstance(name_node, ast.Constant) and isinstance(name_node.value, str):
            found[name_node.value] = call
    return found


def settings_reads() -> set[str]:
    return {name for path in _modules() for name in variables_read(path)}


def production_required() -> set[str]:
    """Variables the settings need in production: read with no default, or with a default that
    is empty outside the embedded mode (``X if EMBEDDED else None`` or ``[]``)."""
    required = set()
    for name, call in variables_read(SETTINGS).items():
        if call is None:
            continue
        default = call.args[1] if len(call.args) > 1 else None
        if default is None:
            required.add(name)
        elif isinstance(default, ast.IfExp):
            otherwise = default.orelse
            if (isinstance(otherwise, ast.Constant) and otherwise.value is None) or (
                isinstance(otherwise, ast.List) and not otherwise.elts
            ):
                required.add(name)
    return required


# --- compose.yaml against the Compose Specification ---


def test_the_vendored_schema_is_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert schema["title"] == "Compose Specification"
    jsonschema.validators.validator_for(schema).check_schema(schema)


def test_compose_yaml_is_valid_against_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: d["services"]["web"]["depends_on"]["migrate"].update(condition="finished"),
        lambda d: d["services"]["web"].update(healthcheck={"test": 1}),
        lambda d: d["services"]["worker"].update(restart_policy="always"),
        lambda d: d.update(volume={"x": {}}),
    ],
    ids=["unknown condition", "bad healthcheck", "unknown service key", "unknown top-level key"],
)
def test_the_schema_check_catches_a_broken_file(break_it: Any) -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    broken = copy.deepcopy(compose())
    break_it(broken)
    assert list(validator.iter_errors(broken))


# --- every variable compose.yaml sets is one the settings read, and every required one is set ---


def test_the_settings_parser_finds_the_production_requirements() -> None:
    # The parser itself: these are the variables hub/settings documents as required.
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "DJANGO_ALLOWED_HOSTS"} <= (
        production_required()
    )
    assert "HASHHUB_SIGNUP_OPEN" in settings_reads()  # read by hub/adapters.py


def test_every_variable_compose_gives_the_hub_is_one_the_settings_read() -> None:
    read = settings_reads()
    for name, spec in hub_services(compose()).items():
        unknown = set(spec.get("environment", {})) - read
        assert unknown == set(), f"{name} sets variables nothing reads: {sorted(unknown)}"


def test_every_variable_the_dockerfile_sets_is_read() -> None:
    env = set()
    for instruction, argument in dockerfile_stages()[-1]:
        if instruction == "ENV":
            env |= {item.split("=", 1)[0] for item in shlex.split(argument)}
    assert env - {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"} <= settings_reads()


def test_every_variable_required_in_production_is_set_for_every_hub_service() -> None:
    required = production_required()
    for name, spec in hub_services(compose()).items():
        environment = environment_of(spec, operator_environment())
        assert environment["HASHHUB_MODE"] == "production"
        missing = {var for var in required if not environment.get(var)}
        assert missing == set(), f"{name} lacks {sorted(missing)}"


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(secret: str) -> None:
    environ = operator_environment()
    document = compose()
    services = {**hub_services(document), "postgres": document["services"]["postgres"]}
    for spec in services.values():
        environment_of(spec, environ)  # complete: no error
    del environ[secret]
    with pytest.raises(UnsetError, match=secret):
        for spec in services.values():
            environment_of(spec, environ)


def test_the_settings_load_in_production_from_exactly_what_compose_sets() -> None:
    spec = hub_services(compose())["web"]
    env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "hub.settings"}
    env |= environment_of(spec, operator_environment())
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.MODE, s.DATABASES['default']['HOST'], s.REDIS_URL, s.ALLOWED_HOSTS, "
        "s.HASHHUB_INDEX_DIR, s.SECURE_SSL_REDIRECT)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "production", "postgres", "redis://redis:6379/0", "['hub.example.org']",
        "/var/lib/hashhub/index", "True",
    ]  # fmt: skip


# --- the services ---


def test_web_workers_and_beat_wait_for_the_one_shot_migrate() -> None:
    services = compose()["services"]
    migrate = services["migrate"]
    assert "migrate" in migrate["command"] and migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker", "webhooks", "beat"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }


def test_every_long_running_service_has_a_health_check() -> None:
    services = compose()["services"]
    assert set(services) == LONG_RUNNING | {"migrate"}
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), name


def _command(spec: Mapping[str, Any]) -> list[str]:
    command = spec["command"]
    words = shlex.split(command) if isinstance(command, str) else list(command)
    if words[:2] == ["sh", "-c"]:
        words = shlex.split(words[2])
    return [interpolate(word, {}) for word in words]


def _option(words: list[str], *names: str) -> str:
    for index, word in enumerate(words):
        if word in names:
            return words[index + 1]
    raise AssertionError(f"no {names} in {words}")


def test_web_is_gunicorn_with_one_sync_worker_per_core() -> None:
    words = _command(compose()["services"]["web"])
    assert words[:2] == ["exec", "gunicorn"]
    assert _option(words, "--workers", "-w") == "$(nproc)"
    assert not {"--threads", "--worker-class", "-k"} & set(words)


def test_the_workers_consume_every_queue_and_webhooks_have_a_worker_of_their_own() -> None:
    from hub.celery import app

    services = compose()["services"]
    consumed = {
        name: set(_option(_command(spec), "-Q", "--queues").split(","))
        for name, spec in services.items()
        if name in {"worker", "webhooks"}
    }
    assert set().union(*consumed.values()) == set(app.amqp.queues)
    assert consumed["webhooks"] == {"webhooks"}
    assert {"imports", "digests"} <= set(app.amqp.queues)
    assert _command(services["beat"])[:4] == ["celery", "-A", "hub", "beat"]


def test_every_queue_route_names_a_real_task() -> None:
    from hub.celery import app

    app.loader.import_default_modules()
    routes = app.conf.task_routes
    assert set(routes) <= set(app.tasks)
    assert {route["queue"] for route in routes.values()} <= set(app.amqp.queues)


def test_postgres_data_and_the_index_snapshots_live_on_volumes() -> None:
    document = compose()
    volumes = set(document["volumes"])
    postgres = document["services"]["postgres"]["volumes"]
    assert any(
        m.endswith(":/var/lib/postgresql/data") and m.split(":")[0] in volumes for m in postgres
    )
    for name, spec in hub_services(document).items():
        index_dir = spec["environment"]["HASHHUB_INDEX_DIR"]
        mounts = {m.split(":")[1]: m.split(":")[0] for m in spec["volumes"]}
        assert mounts.get(index_dir) in volumes, name


# --- the Dockerfile ---


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of (INSTRUCTION, arguments), continuations joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, argument = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction.upper(), argument.strip()))
    return stages


def test_the_dockerfile_builds_in_one_stage_and_runs_in_another() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    build_name = stages[0][0][1].split()[-1]
    build_runs = " ".join(argument for instruction, argument in stages[0] if instruction == "RUN")
    assert COMPILER.search(build_runs)  # the build stage has its compilers...
    assert "pip wheel" in build_runs
    final = stages[-1]
    runs = " ".join(argument for instruction, argument in final if instruction == "RUN")
    assert not COMPILER.search(runs)  # ...the final stage installs none
    assert "apt-get install" not in runs
    assert "--no-index" in runs  # only the wheels built in the first stage
    copies = [argument for instruction, argument in final if instruction == "COPY"]
    assert any(argument.startswith(f"--from={build_name} ") for argument in copies)


def test_the_final_image_runs_as_an_unprivileged_user_with_a_health_check() -> None:
    final = dockerfile_stages()[-1]
    users = [argument for instruction, argument in final if instruction == "USER"]
    assert users, "no USER in the final stage"
    assert users[-1].split(":")[0] not in {"root", "0"}
    instructions = [instruction for instruction, _ in final]
    assert "HEALTHCHECK" in instructions
    # Nothing after the last USER switches back to root.
    assert instructions.index("USER") > max(
        index for index, instruction in enumerate(instructions) if instruction == "RUN"
    )


def test_the_build_context_leaves_out_local_state_and_secrets() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "var", "hashhub.env", ".env"} <= ignored
