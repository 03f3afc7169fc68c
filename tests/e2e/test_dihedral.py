"""A platform matching rotated and mirrored copies of a listed picture, on a hub started as
`make run` does.

Juliet, an organisation made with the documented commands, lists the PDQ of a synthetic
picture. Copies of it turned a quarter, half or three quarters and mirrored every way match
when Juliet sends them with `dihedral=true`, saying how each was turned, and none of them
matches without it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from PIL import Image

from tests.e2e.helpers import Api, RunningHub, synthetic_png

pytestmark = pytest.mark.e2e

SCOPES = "match,lists:read,lists:write"
T = Image.Transpose
TRANSFORMS = {
    "rotate90": T.ROTATE_90,
    "rotate180": T.ROTATE_180,
    "rotate270": T.ROTATE_270,
    "flip_horizontal": T.FLIP_LEFT_RIGHT,
    "flip_vertical": T.FLIP_TOP_BOTTOM,
    "transpose": T.TRANSPOSE,
    "transverse": T.TRANSVERSE,
}


@pytest.fixture(scope="module")
def juliet(hub: RunningHub) -> Iterator[Api]:
    hub.manage("createorg", "--name", "Juliet Pictures", "--slug", "juliet", "--approve")
    key = hub.manage("createapikey", "--org", "juliet", "--name", "e2e", "--scopes", SCOPES)
    api = hub.api(key.stdout.strip())
    yield api
    api.close()


def match_image(api: Api, data: bytes, **fields: str) -> dict:
    files = {"image": ("upload.png", data, "image/png")}
    return dict(api.call("POST", "/api/v1/match/image", files=files, data=fields))


def test_turned_and_mirrored_copies_match_with_dihedral_and_not_without(juliet: Api) -> None:
    # 320 px: at 256 PDQ's downscaling is off centre by a pixel, and turned copies move further.
    original = synthetic_png(seed=19, size=(320, 320))
    listed = match_image(juliet, original)["hashes"]["pdq"]["value"]
    added = juliet.add(juliet.list_id("CSAM"), [("pdq", listed)])
    assert added["added"] == 1

    picture = Image.open(io.BytesIO(original))
    for name, method in TRANSFORMS.items():
        buffer = io.BytesIO()
        picture.transpose(method).save(buffer, "PNG")
        copy = buffer.getvalue()

        plain = match_image(juliet, copy)
        assert all(result["matches"] == [] for result in plain["results"]), name

        body = match_image(juliet, copy, dihedral="true")
        [pdq] = [result for result in body["results"] if result["type"] == "pdq"]
        [match] = pdq["matches"]
        assert match["transform"] == name
        assert match["matched_value"] == listed
        assert match["list"]["tier"] == "own"


def test_a_dihedral_that_is_not_a_boolean_is_a_clear_400(juliet: Api) -> None:
    files = {"image": ("upload.png", synthetic_png(seed=20), "image/png")}
    body = juliet.call(
        "POST", "/api/v1/match/image", expect=400, files=files, data={"dihedral": "maybe"}
    )
    assert body["error"]["code"] == "invalid_dihedral"
