"""Every API error has one shape, {"error": {"code", "message", "details"}}: no HTML, no trace."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory

from hub.api_base import OrgAPIView
from hub.api_parsers import MAX_JSON_DEPTH, json_depth_exceeds

pytestmark = pytest.mark.django_db


def _assert_error(response: object, status: int, code: str) -> None:
    assert response.status_code == status  # type: ignore[attr-defined]
    assert response["Content-Type"].startswith("application/json")  # type: ignore[index]
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"].endswith(".")


def test_an_unknown_api_path_is_a_json_404() -> None:
    _assert_error(Client().get("/api/v1/no-such-thing"), 404, "not_found")


def test_a_wrong_method_is_a_json_405(api_a: Client) -> None:
    _assert_error(
        api_a.post("/api/v1/me", {}, content_type="application/json"), 405, "method_not_allowed"
    )


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/*"])
def test_json_is_answered_to_any_accept_that_takes_it(api_a: Client, accept: str | None) -> None:
    response = api_a.get("/api/v1/me", headers={"Accept": accept} if accept else None)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


def test_an_accept_without_json_is_a_406_with_a_code(api_a: Client) -> None:
    _assert_error(api_a.get("/api/v1/me", HTTP_ACCEPT="text/html"), 406, "not_acceptable")
    _assert_error(api_a.get("/api/v1/me?format=xml"), 404, "not_found")


class _EchoView(OrgAPIView):
    def post(self, request: Request) -> Response:
        return Response({"got": request.data})


def test_malformed_json_is_a_400_with_a_code_not_a_500(key_a: tuple[object, str]) -> None:
    request = APIRequestFactory().generic(
        "POST",
        "/x",
        '{"hashes": [',
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key_a[1]}",
    )
    response = _EchoView.as_view()(request)
    assert response.status_code == 400
    assert response.data["error"]["code"] == "malformed_request"
    assert "JSON parse error" in response.data["error"]["message"]


def test_the_openapi_schema_and_its_docs_page_are_served() -> None:
    schema = Client().get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    document = schema.json()
    assert document["info"]["title"] == "HashHub API"
    assert "/api/v1/me" in document["paths"]
    assert document["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    docs = Client().get("/api/docs")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


def test_a_body_larger_than_any_upload_is_refused_before_it_is_read(settings: object) -> None:
    from django.test import Client as PlainClient

    limit = settings.FILE_UPLOAD_MAX_MEMORY_SIZE  # type: ignore[attr-defined]
    client = PlainClient()
    api = client.generic(
        "POST", "/api/v1/me", b"x", content_type="application/json",
        CONTENT_LENGTH=str(limit + 10 * 2**20),
    )  # fmt: skip
    assert api.status_code == 413
    assert api.json()["error"]["code"] == "request_too_large"
    page = client.generic(
        "POST", "/accounts/login/", b"x", content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(limit + 10 * 2**20),
    )  # fmt: skip
    assert page.status_code == 413
    assert "larger than this hub accepts" in page.content.decode()


@pytest.mark.parametrize("depth", [5000, MAX_JSON_DEPTH + 1])
def test_a_body_nested_too_deeply_is_a_400(api_a: Client, depth: int) -> None:
    """5,000 nested arrays (a few kilobytes) made the decoder raise RecursionError: a 500."""
    body = "[" * depth + "]" * depth
    response = api_a.post("/api/v1/match", body, content_type="application/json")
    _assert_error(response, 400, "malformed_request")
    assert f"more than {MAX_JSON_DEPTH} levels" in response.json()["error"]["message"]


def test_a_body_at_the_depth_limit_is_parsed() -> None:
    shallow: object = []
    for _ in range(MAX_JSON_DEPTH - 1):
        shallow = [shallow]
    assert not json_depth_exceeds(shallow)
    assert json_depth_exceeds([shallow])
    assert not json_depth_exceeds({"hashes": [{"type": "pdq", "value": "0" * 64}]}, limit=3)
    assert json_depth_exceeds({"hashes": [{"type": ["x"]}]}, limit=3)
