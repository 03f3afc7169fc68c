"""API v1 keeps to its own OpenAPI document (issue 18).

schemathesis reads ``GET /api/v1/schema`` from the WSGI application (no server) and sends every
operation generated requests, valid ones and invalid ones, with a full-scope key of an approved
organisation whose world has something in it: own lists with entries, a subscribed open list and
an anonymous one of another organisation, a verified source, a dispute. Then it follows the
document's links (create a list, then read, change and fill it; page through the export) as a
state machine. Every answer must be documented: no 5xx, a status the operation declares, the
declared content type and headers, and a body of the declared schema.

The number of requests sent is printed and recorded as the ``schemathesis_cases`` property.
Examples per operation are capped so the whole test stays well under 90 seconds on two cores.
"""

from __future__ import annotations

import io
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import DatabaseError, close_old_connections, transaction
from django_scopes import scope, scopes_disabled
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from PIL import Image
from schemathesis import APIOperation
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hub.api_auth import ApiKeyThrottle
from hub.audit import Actor
from hub.models import Organization
from lists import services as list_services
from lists.models import HashList
from lists.sources import services as source_services
from matching.engine import get_engine
from matching.models import Detection
from reports import services as report_services
from sharing import disputes
from sharing import services as sharing_services
from tests.conftest import make_key
from tests.factories import OrganizationFactory
from tests.reports.conftest import open_report

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")
SCOPES = ["match", "lists:read", "lists:write", "lists:admin", "export", "review", "reports"]

# Requests per operation and mode; the stateful run's scenarios and their steps.
# $HASHHUB_SCHEMATHESIS_SCALE multiplies them for a deeper run (e.g. 5: about two minutes).
_SCALE = float(os.environ.get("HASHHUB_SCHEMATHESIS_SCALE", "1"))
POSITIVE_EXAMPLES = round(30 * _SCALE)
NEGATIVE_EXAMPLES = round(15 * _SCALE)
STATEFUL_SCENARIOS = round(40 * _SCALE)
STATEFUL_STEPS = 6

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _entries(hash_list: HashList, *items: tuple[str, str]) -> None:
    with scopes_disabled():
        list_services.entry_add(
            hash_list=hash_list,
            items=[list_services.EntryInput(t, v, ("A1",), "seeded") for t, v in items],
            actor=SYSTEM,
        )


def _default_list(org: Organization, category: str) -> HashList:
    with scope(organization=org.pk):
        return HashList.objects.get(organization=org, category=category, is_default=True)


@dataclass(frozen=True)
class World:
    key: str
    list_ids: tuple[str, ...]  # A's own CSAM list, B's open and anonymous lists, a source's
    open_list: str
    hashes: tuple[tuple[str, str], ...]  # held by A, B and the source
    detection_ids: tuple[str, ...] = ()  # A's detections (one of one category, one of two)
    report_ids: tuple[str, ...] = ()  # A's reports: a draft and a filed one


def _png() -> bytes:
    """A small synthetic picture with enough detail for a PDQ of good quality."""
    image = Image.new("RGB", (64, 64))
    image.putdata(
        [((x * 7) % 256, (y * 13) % 256, (x * y) % 256) for y in range(64) for x in range(64)]
    )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    """A full-scope key of approved org A, whose lists, subscriptions and disputes hold data."""
    from tests.lists.test_sources_runner import Scripted

    org_a = OrganizationFactory.create(name="Org A", slug="org-a")
    org_b = OrganizationFactory.create(name="Org B", slug="org-b")
    shared_pdq, shared_md5 = secrets.token_hex(32), secrets.token_hex(16)
    _entries(
        _default_list(org_a, "csam"),
        ("pdq", shared_pdq),
        ("md5", shared_md5),
        ("sha256", secrets.token_hex(32)),
        ("phash", secrets.token_hex(8)),
    )
    b_open = _default_list(org_b, "csam")
    _entries(b_open, ("pdq", shared_pdq), ("md5", shared_md5), ("sha1", secrets.token_hex(20)))
    with scope(organization=org_b.pk):
        sharing_services.list_visibility_set(hash_list=b_open, visibility="open", actor=SYSTEM)
        b_anonymous = list_services.list_create(
            org=org_b, name="Quiet", category="se", actor=SYSTEM
        )
        _entries(b_anonymous, ("pdq", secrets.token_hex(32)))
        sharing_services.list_visibility_set(
            hash_list=b_anonymous, visibility="anonymous", actor=SYSTEM
        )
    sharing_services.anonymous_publish()
    monkeypatch.setattr(source_services, "adapter_class", lambda kind: Scripted)
    with scopes_disabled():
        source = source_services.source_create(
            name="Hotline Feed", kind="feed", config={}, access="all", actor=SYSTEM
        )
        _entries(source_services.source_lists(source)["csam"], ("md5", shared_md5))
    with scope(organization=org_a.pk):
        sharing_services.subscription_list_set(
            org=org_a, public_id=b_open.public_id, subscribed=True, actor=SYSTEM
        )
        sharing_services.subscription_category_set(
            org=org_a, category="se", subscribed=True, actor=SYSTEM
        )
        disputes.dispute_create(
            org=org_a,
            list_public_id=b_open.public_id,
            signal_type="pdq",
            value=shared_pdq,
            reason="other",
            actor=SYSTEM,
        )
    with scope(organization=org_a.pk):
        detections = [
            Detection.objects.create(
                organization=org_a,
                source_label="test",
                submitted=[{"type": "md5", "value": shared_md5}],
                matches=[{"type": "md5", "value": shared_md5, "matches": []}],
                match_count=1,
                match_total=1,
                tiers=["own"],
                categories=categories,
            ).public_id
            for categories in (["csam"], ["csam", "se"])
        ]
    draft = open_report(org_a, uploader_ref="uploader-1", notes="seeded")
    filed = open_report(org_a)
    with scope(organization=org_a.pk):
        report_services.report_file(report=filed, actor=SYSTEM, hotline_report_id="CT-1")
    return World(
        key=make_key(org_a, SCOPES)[1],
        detection_ids=tuple(detections),
        report_ids=(draft.public_id, filed.public_id),
        list_ids=(
            _default_list(org_a, "csam").public_id,
            b_open.public_id,
            b_anonymous.public_id,
            source_services.source_lists(source)["csam"].public_id,
        ),
        open_list=b_open.public_id,
        hashes=(("pdq", shared_pdq), ("md5", shared_md5)),
    )


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[WSGIHandler]:
    """The WSGI application, as gunicorn serves it, inside the test's transaction.

    As Django's test client does, the request signals do not close the database connection
    (which would end the test's transaction); the per-key rate is raised so that the run
    exercises the operations rather than the throttle (429 is documented all the same).
    """
    monkeypatch.setattr(ApiKeyThrottle, "THROTTLE_RATES", {"api_key": "1000000/min"})
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _calling(headers: dict[str, str], answers: Counter[tuple[str, int]]) -> Callable[..., Any]:
    """``case.call`` with the key, in a savepoint of its own: a request that fails in the
    database (a 500, which the checks report) does not abort the test's transaction.
    ``answers`` counts the requests by operation and status."""

    def call(case: Any, **kwargs: Any) -> Any:
        response = None
        try:
            with transaction.atomic():
                response = case.call(headers=headers, **kwargs)
        except DatabaseError:
            if response is None:
                raise
        answers[case.operation.label, response.status_code] += 1
        return response

    return call


@contextmanager
def _from_the_seeded_world() -> Iterator[None]:
    """Whatever a case or a scenario changes is rolled back after it (and the match index
    rebuilt before it), so each one starts from the seeded world: Hypothesis replays a failing
    one exactly to report it, and a run's answers do not depend on what ran before."""
    savepoint = transaction.savepoint()
    get_engine().reset()
    try:
        yield
    finally:
        transaction.savepoint_rollback(savepoint)


def _settings(max_examples: int, **more: Any) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        **more,
    )


def _known_data(operation: APIOperation, world: World) -> list[SearchStrategy[Any]]:
    """Valid requests that reach the seeded data, beside the generated ones (whose random list
    ids and hash values mostly find nothing)."""
    strategies = []
    if "{list_id}" in operation.path:
        strategies += [
            operation.as_strategy(path_parameters={"list_id": list_id})
            for list_id in world.list_ids
        ]
    if "{detection_id}" in operation.path:
        strategies += [
            operation.as_strategy(path_parameters={"detection_id": detection_id})
            for detection_id in world.detection_ids
        ]
    if "{report_id}" in operation.path:
        strategies += [
            operation.as_strategy(path_parameters={"report_id": report_id})
            for report_id in world.report_ids
        ]
    if operation.label == "POST /api/v1/detections/{detection_id}/review":
        strategies += [
            operation.as_strategy(
                path_parameters={"detection_id": world.detection_ids[0]},
                body={"action": action},
            )
            for action in ("confirm", "false_positive", "dismiss")
        ]
    hashes = [{"type": t, "value": v} for t, v in world.hashes]
    if operation.label == "POST /api/v1/match":
        strategies.append(operation.as_strategy(body={"hashes": hashes, "content_ref": "x"}))
    if operation.label == "POST /api/v1/match/image":
        strategies.append(
            operation.as_strategy(body={"image": _png()}, media_type="multipart/form-data")
        )
    if operation.label == "POST /api/v1/disputes":
        strategies += [
            operation.as_strategy(body={"list": world.open_list, **h, "reason": "other"})
            for h in hashes
        ]
    return strategies


def test_every_operation_answers_as_its_schema_says(
    app: WSGIHandler, world: World, record_property: Callable[[str, object], None]
) -> None:
    started = time.monotonic()
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema", app)
    headers = {"Authorization": f"Bearer {world.key}"}
    answers: Counter[tuple[str, int]] = Counter()
    call = _calling(headers, answers)
    failures: list[str] = []
    loaded = list(schema.get_all_operations())
    operations = [result.ok() for result in loaded if isinstance(result, Ok)]
    assert len(operations) == len(loaded) >= 18, [r for r in loaded if not isinstance(r, Ok)]

    for operation in operations:
        for mode, examples in (
            (schemathesis.GenerationMode.POSITIVE, POSITIVE_EXAMPLES),
            (schemathesis.GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES),
        ):
            generated = operation.as_strategy(generation_mode=mode)
            if mode == schemathesis.GenerationMode.POSITIVE:
                generated = st.one_of(generated, *_known_data(operation, world))

            @_settings(examples)
            @given(case=generated)
            def run(case: Any) -> None:
                with _from_the_seeded_world():
                    case.validate_response(call(case), checks=CHECKS)

            try:
                run()
            except (Exception, FailureGroup) as failure:
                failures.append(f"{operation.label} ({mode.value}):\n{failure}")

    base = schema.as_state_machine()
    stateful = [0]

    class Machine(base):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            self.world = _from_the_seeded_world()
            self.world.__enter__()

        def teardown(self) -> None:
            self.world.__exit__(None, None, None)

        def call(self, case: Any, **kwargs: Any) -> Any:
            stateful[0] += 1
            return call(case, **kwargs)

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(
                response,
                checks=[*CHECKS, ensure_resource_availability],
                recorder=self.recorder,
            )

    try:
        Machine.run(settings=_settings(STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS))
    except (Exception, FailureGroup) as failure:
        failures.append(f"stateful (links):\n{failure}")

    elapsed = time.monotonic() - started
    requests = sum(answers.values())
    record_property("schemathesis_cases", requests)
    by_operation: dict[str, list[str]] = {}
    for (label, status), n in sorted(answers.items()):
        by_operation.setdefault(label, []).append(f"{status}x{n}")
    print(
        f"\n[schemathesis] {requests} requests to {len(operations)} operations "
        f"({stateful[0]} of them following links) in {elapsed:.1f} s; {len(failures)} failing"
    )
    for label, statuses in by_operation.items():
        print(f"[schemathesis]   {label}: {' '.join(statuses)}")
    assert not failures, "\n\n".join(failures)


def test_the_schema_is_valid_and_types_every_body_and_error() -> None:
    """What the property test above cannot see: a body left untyped, an operation without its
    common errors, a warning of drf-spectacular (an unresolved type, a name collision)."""
    GENERATOR_STATS.reset()
    document = SchemaGenerator().get_schema(request=None, public=True)
    assert not GENERATOR_STATS, "drf-spectacular warned while generating the schema"
    validate_schema(document)
    error = {"$ref": "#/components/schemas/Error"}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            where = f"{method.upper()} {path}"
            responses = operation["responses"]
            assert any(status.startswith("2") for status in responses), where
            for status, response in responses.items():
                (schema,) = [body["schema"] for body in response["content"].values()]
                if status.startswith("2"):
                    assert "$ref" in schema, where
                else:
                    assert schema == error, (where, status)
            assert {"400", "401", "406", "429"} <= set(responses), where
            for body in operation.get("requestBody", {}).get("content", {}).values():
                assert "$ref" in body["schema"] or body["schema"].get("properties"), where
