"""Every API error has one shape, {"error": {"code", "message", "details"}}: no HTML, no trace."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image
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


_MD5 = "9e107d9d372bb6826bd81d3542a419d6"
_NUL_REQUESTS = {
    "list id": ("get", "/api/v1/lists/a%00b", None),
    "list id of a subscription": ("put", "/api/v1/lists/a%00b/subscription", None),
    "label filter": ("get", "/api/v1/lists/{csam}/entries?label=a%00b", None),
    "type filter": ("get", "/api/v1/lists/{csam}/entries?type=a%00b", None),
    "disputes cursor": ("get", "/api/v1/disputes?cursor=a%00b", None),
    "entry note": (
        "post",
        "/api/v1/lists/{csam}/entries",
        {"entries": [{"type": "md5", "value": _MD5, "note": "a\x00b"}]},
    ),
    "removal reason": (
        "post",
        "/api/v1/lists/{csam}/entries/remove",
        {"entries": [{"type": "md5", "value": _MD5}], "reason": "a\x00b"},
    ),
    "disputed list": (
        "post",
        "/api/v1/disputes",
        {"list": "a\x00b", "type": "md5", "value": _MD5, "reason": "other"},
    ),
    "content_ref of a match": (
        "post",
        "/api/v1/match",
        {"hashes": [{"type": "md5", "value": _MD5}], "content_ref": "a\x00b"},
    ),
}


@pytest.mark.parametrize("where", list(_NUL_REQUESTS))
def test_a_nul_character_anywhere_is_a_400_not_a_500(api_a: Client, where: str) -> None:
    """PostgreSQL's text cannot hold U+0000: each of these reached a query and answered 500
    (found by tests/test_api_schema.py)."""
    csam = next(
        item["id"]
        for item in api_a.get("/api/v1/lists?tier=own&category=csam").json()["lists"]
        if item["default"]
    )
    added = api_a.post(
        f"/api/v1/lists/{csam}/entries",
        {"entries": [{"type": "md5", "value": _MD5}]},
        content_type="application/json",
    )
    assert added.json()["added"] == 1  # so that the match records a detection
    method, path, body = _NUL_REQUESTS[where]
    path = path.format(csam=csam)
    if body is None:
        response = getattr(api_a, method)(path)
    else:
        response = getattr(api_a, method)(path, body, content_type="application/json")
    _assert_error(response, 400, "nul_character")


def test_a_nul_character_in_a_form_is_a_400_too(api_a: Client) -> None:
    """A form body (the image match's, or any other's) reached the same queries."""
    image = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 90)).save(image, format="PNG")
    png = image.getvalue()
    csam = next(
        item["id"]
        for item in api_a.get("/api/v1/lists?tier=own&category=csam").json()["lists"]
        if item["default"]
    )
    entry = {"type": "md5", "value": hashlib.md5(png).hexdigest()}  # noqa: S324 (a test hash)
    api_a.post(
        f"/api/v1/lists/{csam}/entries", {"entries": [entry]}, content_type="application/json"
    )
    upload = SimpleUploadedFile("x.png", png, content_type="image/png")
    matched = api_a.post("/api/v1/match/image", {"image": upload, "content_ref": "a\x00b"})
    _assert_error(matched, 400, "nul_character")
    disputed = api_a.post(
        "/api/v1/disputes", {"list": "a\x00b", "type": "md5", "value": _MD5, "reason": "other"}
    )
    _assert_error(disputed, 400, "nul_character")
