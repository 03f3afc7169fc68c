"""The HMA-compatible facade under /hma/, asked as HMA clients ask, answered in HMA's shapes.

The request and response shapes come from the pinned HMA (facebook/ThreatExchange,
``hasher-matcher-actioner/src/OpenMediaMatch``), as named by hma.selectors.HMA_COMMIT:

* ``blueprints/matching.py`` at 35f02700c6b3d830ff262d8ac85f398eaa077299: ``lookup_get`` returns
  ``{BANK: [{"bank_content_id": int, "distance": str}]}`` with the outer type key elided when
  ``signal_type`` is given, ``lookup_post`` returns it keyed by type, ``raw_lookup`` returns
  ``{"matches": [int]}`` or, with ``include_distance``,
  ``{"matches": [{bank_content_id, distance}]}``
  (its request model refuses a missing ``signal`` with 422), ``compare`` returns
  ``{type: [match, {"distance": n}]}`` and 400 for a non-dict or a pair not of two,
  ``index_status`` returns ``{type: {"present", "built_to", "size"}}`` and 400 for an unknown type;
* ``blueprints/hashing.py`` at 1c5c910942c57a2387460346f66557b335938076: ``POST /h/hash`` takes one
  multipart file in a field named for its content type and answers ``{type: hash}``; 400 for no
  file, two files or an unknown content type;
* ``blueprints/curation.py`` and ``schemas/curation.py`` at
  1777d8649f66cc79948b62b903995d268eeab65c: banks are ``{"name", "matching_enabled_ratio"}``,
  ``POST /c/banks`` answers 201 (400 for a name off ``^[A-Z0-9_]+$``, 403 for an existing one),
  ``POST /c/bank/<name>/signal`` answers
  ``{"id", "signals"}``, content is ``{"id", "disable_until_ts", "original_media_uri", "bank",
  "signals"?, "note"?}`` (``disable_until_ts`` 1 = enabled), ``DELETE`` content answers
  ``{"deleted": n}`` and a bank ``{"message": "Done"}``; a note over 255 characters is a 400.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django_scopes import scope, scopes_disabled

from hma import selectors
from hub.models import Organization
from lists.models import Entry, HashList
from tests.conftest import make_key
from tests.e2e.helpers import LocalServer
from tests.lists.test_hashtypes_compute import encode, synthetic_image
from tests.matching.test_match_api import add, flip, own_list, random_pdq
from tests.sharing.test_access import new_list, publish, share, subscribe

pytestmark = pytest.mark.django_db

ALL = ["match", "lists:read", "lists:write", "lists:admin", "export"]
MOMENT = dt.datetime(2026, 3, 18, 16, 30, tzinfo=dt.UTC)


def bearer(org: Organization, scopes: list[str] | None = None) -> Client:
    _, secret = make_key(org, scopes or ALL, name=f"{org.slug} hma key")
    return Client(headers={"Authorization": f"Bearer {secret}"})


def basic(secret: str, *, as_password: bool = False) -> Client:
    pair = f"any:{secret}" if as_password else f"{secret}:"
    token = base64.b64encode(pair.encode()).decode()
    return Client(headers={"Authorization": f"Basic {token}"})


@pytest.fixture
def hma_a(org_a: Organization) -> Client:
    return bearer(org_a)


def post_json(client: Client, path: str, body: Any) -> Any:
    return client.post(path, body, content_type="application/json")


def put_json(client: Client, path: str, body: Any) -> Any:
    return client.put(path, body, content_type="application/json")


def error_code(response: Any) -> str:
    body = response.json()
    assert set(body["error"]) >= {"code", "message"}, body
    return str(body["error"]["code"])


def bank_signal(client: Client, bank: str, signals: dict[str, str]) -> Any:
    return post_json(client, f"/hma/c/bank/{bank}/signal", signals)


# --- matching --------------------------------------------------------------------------------


def test_lookup_with_signal_type_answers_banks_without_the_type_key_distance_as_text(
    hma_a: Client,
) -> None:
    stored = random_pdq()
    added = bank_signal(hma_a, "CSAM", {"pdq": stored}).json()
    response = hma_a.get("/hma/m/lookup", {"signal": flip(stored, 3), "signal_type": "pdq"})
    assert response.status_code == 200
    assert response.json() == {"CSAM": [{"bank_content_id": added["id"], "distance": "3"}]}


def test_a_miss_is_an_empty_object(hma_a: Client) -> None:
    response = hma_a.get("/hma/m/lookup", {"signal": random_pdq(), "signal_type": "pdq"})
    assert response.status_code == 200
    assert response.json() == {}


def test_lookup_keeps_to_the_banks_asked_for(hma_a: Client) -> None:
    md5 = secrets.token_hex(16)
    post_json(hma_a, "/hma/c/banks", {"name": "OTHER"})
    bank_signal(hma_a, "CSAM", {"md5": md5})
    bank_signal(hma_a, "OTHER", {"md5": md5})
    both = hma_a.get("/hma/m/lookup", {"signal": md5, "signal_type": "md5"}).json()
    assert set(both) == {"CSAM", "OTHER"}
    assert both["CSAM"][0]["distance"] == "0"
    only = hma_a.get("/hma/m/lookup", {"signal": md5, "signal_type": "md5", "banks": "OTHER"})
    assert set(only.json()) == {"OTHER"}


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({}, 400),  # neither url nor signal and signal_type
        ({"signal": "abc"}, 400),
        ({"signal": "00" * 32, "signal_type": "video_md5"}, 400),  # no such signal type
        ({"signal": "zz", "signal_type": "pdq"}, 400),  # invalid signal
        ({"url": "http://169.254.169.254/latest/meta-data/"}, 400),  # no URL fetches at all
    ],
)
def test_lookup_refuses_bad_input_as_hma_does_with_hashhubs_error_body(
    hma_a: Client, params: dict[str, str], status: int
) -> None:
    response = hma_a.get("/hma/m/lookup", params)
    assert response.status_code == status
    error_code(response)


def test_lookup_by_upload_answers_per_signal_type(hma_a: Client, org_a: Organization) -> None:
    png = encode(synthetic_image(seed=21))
    hashed = hma_a.post("/hma/h/hash", {"photo": SimpleUploadedFile("a.png", png)}).json()
    added = bank_signal(hma_a, "SE", {"pdq": hashed["pdq"]}).json()
    response = hma_a.post("/hma/m/lookup", {"photo": SimpleUploadedFile("b.png", png)})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"pdq", "phash", "md5", "sha1", "sha256"}
    assert body["pdq"] == {"SE": [{"bank_content_id": added["id"], "distance": "0"}]}
    assert body["md5"] == {}


def test_raw_lookup_answers_content_ids_and_with_distance_objects(hma_a: Client) -> None:
    stored = random_pdq()
    content_id = bank_signal(hma_a, "CSAM", {"pdq": stored}).json()["id"]
    query = {"signal": flip(stored, 2), "signal_type": "pdq"}
    assert hma_a.get("/hma/m/raw_lookup", query).json() == {"matches": [content_id]}
    with_distance = hma_a.get("/hma/m/raw_lookup", {**query, "include_distance": "true"})
    assert with_distance.json() == {"matches": [{"bank_content_id": content_id, "distance": "2"}]}


def test_raw_lookup_refuses_a_missing_field_with_422_as_hmas_request_model(hma_a: Client) -> None:
    response = hma_a.get("/hma/m/raw_lookup", {"signal_type": "pdq"})
    assert response.status_code == 422
    assert error_code(response) == "invalid"
    bad_flag = hma_a.get(
        "/hma/m/raw_lookup",
        {"signal": random_pdq(), "signal_type": "pdq", "include_distance": "maybe"},
    )
    assert bad_flag.status_code == 422


def test_compare_answers_match_and_distance_per_type(hma_a: Client) -> None:
    left = random_pdq()
    near, far = flip(left, 9), flip(left, 100)
    body = post_json(hma_a, "/hma/m/compare", {"pdq": [left, near]}).json()
    assert body == {"pdq": [True, {"distance": 9}]}
    assert post_json(hma_a, "/hma/m/compare", {"pdq": [left, far]}).json()["pdq"][0] is False


@pytest.mark.parametrize(
    "body",
    [
        ["not", "a", "dict"],
        {"pdq": "not a list"},
        {"pdq": ["00" * 32]},
        {"nope": ["a", "b"]},
        {"pdq": ["zz", "00" * 32]},
    ],
)
def test_compare_refuses_bad_input_with_400(hma_a: Client, body: Any) -> None:
    response = post_json(hma_a, "/hma/m/compare", body)
    assert response.status_code == 400
    error_code(response)


def test_index_status_counts_only_what_the_caller_may_match(
    hma_a: Client, org_a: Organization, org_b: Organization
) -> None:
    add(own_list(org_a), ("pdq", random_pdq()), ("md5", secrets.token_hex(16)))
    add(own_list(org_b), *(("pdq", random_pdq()) for _ in range(5)))  # B's private list
    body = hma_a.get("/hma/m/index/status").json()
    assert body["pdq"]["size"] == 1 and body["md5"]["size"] == 1
    assert body["pdq"]["present"] is True and isinstance(body["pdq"]["built_to"], int)
    assert set(body) == {"md5", "sha1", "sha256", "pdq", "phash", "photodna"}
    only = hma_a.get("/hma/m/index/status", {"signal_type": "pdq"}).json()
    assert set(only) == {"pdq"}
    assert hma_a.get("/hma/m/index/status", {"signal_type": "nope"}).status_code == 400


# --- hashing ---------------------------------------------------------------------------------


def test_hash_answers_every_type_hashhub_computes_and_types_narrows_it(hma_a: Client) -> None:
    png = encode(synthetic_image(seed=4))
    response = hma_a.post("/hma/h/hash", {"photo": SimpleUploadedFile("x.png", png)})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"pdq", "phash", "md5", "sha1", "sha256"}
    assert len(body["pdq"]) == 64
    narrowed = hma_a.post(
        "/hma/h/hash?types=pdq", {"photo": SimpleUploadedFile("x.png", png)}
    ).json()
    assert set(narrowed) == {"pdq"}


@pytest.mark.parametrize(
    ("files", "code"),
    [
        ({}, "file_missing"),
        ({"video": b"not a video"}, "content_type_unsupported"),
        ({"text": b"hello"}, "unknown_content_type"),
        ({"photo": b"a", "other": b"b"}, "too_many_files"),
    ],
)
def test_hash_refuses_bad_uploads_with_400(
    hma_a: Client, files: dict[str, bytes], code: str
) -> None:
    form = {field: SimpleUploadedFile("f.bin", data) for field, data in files.items()}
    response = hma_a.post("/hma/h/hash", form)
    assert response.status_code == 400
    assert error_code(response) == code


@pytest.fixture
def served() -> Iterator[tuple[str, bytes]]:
    """A picture served on 127.0.0.1: (its URL, its bytes)."""
    png = encode(synthetic_image(seed=5))
    with LocalServer(png) as server:
        yield f"{server.url}/picture.png", png


def test_hash_by_url_hashes_the_fetched_picture_when_the_address_is_allowed(
    hma_a: Client, served: tuple[str, bytes], settings: Any
) -> None:
    url, png = served
    settings.HASHHUB_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    by_url = hma_a.get("/hma/h/hash", {"url": url})
    assert by_url.status_code == 200, by_url.content
    uploaded = hma_a.post("/hma/h/hash", {"photo": SimpleUploadedFile("x.png", png)}).json()
    assert by_url.json() == uploaded
    looked_up = hma_a.get("/hma/m/lookup", {"url": url})
    assert looked_up.status_code == 200 and set(looked_up.json()) >= {"pdq", "md5"}


def test_hash_by_url_refuses_loopback_and_private_addresses_by_default(
    hma_a: Client, served: tuple[str, bytes]
) -> None:
    url, _ = served
    for target in (url, "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/x.png"):
        refused = hma_a.get("/hma/h/hash", {"url": target})
        assert refused.status_code == 400, target
        assert error_code(refused) == "url_not_allowed"
    assert error_code(hma_a.get("/hma/h/hash", {"url": "file:///etc/passwd"})) == "invalid_url"
    assert hma_a.get("/hma/h/hash").status_code == 400


def test_a_picture_at_a_url_past_the_upload_limit_is_a_413(
    hma_a: Client, served: tuple[str, bytes], settings: Any
) -> None:
    url, png = served
    settings.HASHHUB_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.HASHHUB_MAX_UPLOAD_BYTES = len(png) // 2
    response = hma_a.get("/hma/h/hash", {"url": url})
    assert response.status_code == 413
    assert error_code(response) == "image_too_large"


def test_bank_content_by_url_adds_the_fetched_pictures_hashes(
    hma_a: Client, served: tuple[str, bytes], settings: Any, org_a: Organization
) -> None:
    url, png = served
    settings.HASHHUB_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    bank = next(iter(hma_a.get("/hma/c/banks").json()))["name"]
    response = hma_a.post(f"/hma/c/bank/{bank}/content?url={url}")
    assert response.status_code == 200, response.content
    md5 = hma_a.post("/hma/h/hash", {"photo": SimpleUploadedFile("x.png", png)}).json()["md5"]
    assert hma_a.get("/hma/m/lookup", {"signal": md5, "signal_type": "md5"}).json()


# --- banks -----------------------------------------------------------------------------------


def test_banks_are_the_own_lists_and_creating_one_answers_201(hma_a: Client) -> None:
    assert hma_a.get("/hma/c/banks").json() == [
        {"name": "CSAM", "matching_enabled_ratio": 1.0},
        {"name": "SE", "matching_enabled_ratio": 1.0},
    ]
    created = post_json(hma_a, "/hma/c/banks", {"name": "MY_BANK"})
    assert created.status_code == 201
    assert created.json() == {"name": "MY_BANK", "matching_enabled_ratio": 1.0}
    assert hma_a.get("/hma/c/bank/MY_BANK").json() == created.json()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "lower_case"}, 400),
        ({"name": "VERIFIED_MINE"}, 400),
        ({"name": "CSAM"}, 403),  # exists
        ({}, 422),
        ({"name": "HALF", "enabled_ratio": 0.5}, 400),
        ({"name": "OFF", "enabled": False}, 400),
    ],
)
def test_creating_a_bank_refuses_what_hma_refuses(hma_a: Client, body: Any, status: int) -> None:
    response = post_json(hma_a, "/hma/c/banks", body)
    assert response.status_code == status
    error_code(response)


def test_renaming_and_deleting_a_bank(hma_a: Client, org_a: Organization) -> None:
    post_json(hma_a, "/hma/c/banks", {"name": "OLD"})
    renamed = put_json(hma_a, "/hma/c/bank/OLD", {"name": "NEW"})
    assert renamed.json() == {"name": "NEW", "matching_enabled_ratio": 1.0}
    assert hma_a.get("/hma/c/bank/OLD").status_code == 404
    assert hma_a.delete("/hma/c/bank/NEW").json() == {"message": "Done"}
    assert hma_a.get("/hma/c/bank/NEW").status_code == 404
    with scope(organization=org_a.pk):
        assert HashList.objects.get(name="NEW").deleted_at is not None
    # An organisation's own CSAM and SE lists stay.
    assert hma_a.delete("/hma/c/bank/CSAM").status_code == 400


def test_an_own_list_off_the_pattern_gets_a_stable_name_with_an_id_suffix(
    hma_a: Client, org_a: Organization
) -> None:
    hash_list = new_list(org_a, "Reports: spring 2026")
    expected = f"REPORTS_SPRING_2026_{selectors._id6(hash_list.public_id)}"
    names = [bank["name"] for bank in hma_a.get("/hma/c/banks").json()]
    assert expected in names
    new_list(org_a, "reports spring-2026")  # another list of the same shape changes nothing
    assert expected in [bank["name"] for bank in hma_a.get("/hma/c/banks").json()]


# --- bank content ----------------------------------------------------------------------------


def test_adding_a_signal_answers_a_random_53_bit_id_never_a_row_number(
    hma_a: Client, org_a: Organization
) -> None:
    value = random_pdq()
    response = bank_signal(hma_a, "CSAM", {"pdq": value})
    assert response.status_code == 200
    body = response.json()
    assert body["signals"] == {"pdq": value}
    with scope(organization=org_a.pk):
        entry = Entry.objects.get(hash__value=bytes.fromhex(value))
    assert body["id"] == entry.hma_id != entry.pk
    assert 0 <= body["id"] < 2**53


def test_every_insert_path_gets_a_distinct_id(org_a: Organization) -> None:
    # lists.changes inserts entries with hand-written SQL: the column's default fills them.
    add(own_list(org_a), *(("md5", secrets.token_hex(16)) for _ in range(50)))
    with scopes_disabled():
        ids = [i for i in Entry.objects.values_list("hma_id", flat=True) if i is not None]
    assert len(ids) == 50 and len(set(ids)) == 50
    assert max(ids) < 2**53
    # Random, not consecutive: ordered by insertion they are not a count (the chance that 50
    # random 53-bit numbers all fall within 2**47 of each other is negligible).
    assert max(ids) - min(ids) > 2**47


@pytest.mark.parametrize("bad", [{"nope": "abc"}, {"pdq": "zz"}, {"pdq": 5}])
def test_adding_a_bad_signal_is_refused_whole(hma_a: Client, bad: dict[str, Any]) -> None:
    response = bank_signal(hma_a, "CSAM", {"md5": secrets.token_hex(16), **bad})
    assert response.status_code == 400
    error_code(response)
    with scopes_disabled():
        assert not Entry.objects.exists()  # not even the good md5


def test_adding_no_signal_is_refused(hma_a: Client) -> None:
    response = bank_signal(hma_a, "CSAM", {})
    assert response.status_code == 400
    assert error_code(response) == "no_signals"


def test_content_reads_as_hmas_bank_content(hma_a: Client) -> None:
    value = random_pdq()
    content_id = bank_signal(hma_a, "CSAM", {"pdq": value}).json()["id"]
    body = hma_a.get(f"/hma/c/bank/CSAM/content/{content_id}").json()
    assert body == {
        "id": content_id,
        "disable_until_ts": 1,
        "original_media_uri": None,
        "bank": {"name": "CSAM", "matching_enabled_ratio": 1.0},
    }
    with_signals = hma_a.get(f"/hma/c/bank/CSAM/content/{content_id}?include_signals=true")
    assert with_signals.json()["signals"] == {"pdq": value}
    assert hma_a.get("/hma/c/bank/CSAM/content/12345").status_code == 404
    assert hma_a.get("/hma/c/bank/CSAM/content/abc").status_code == 404  # HMA's <int:...>
    assert hma_a.get(f"/hma/c/bank/SE/content/{content_id}").status_code == 404


def test_putting_disable_until_ts_disables_through_the_match_policy(hma_a: Client) -> None:
    value = random_pdq()
    with time_machine.travel(MOMENT, tick=False):
        content_id = bank_signal(hma_a, "CSAM", {"pdq": value}).json()["id"]
        path = f"/hma/c/bank/CSAM/content/{content_id}"
        until = int((MOMENT + dt.timedelta(days=30)).timestamp())
        response = put_json(hma_a, path, {"disable_until_ts": until, "note": "not for us"})
        assert response.status_code == 200
        assert response.json()["disable_until_ts"] == until
        assert response.json()["note"] == "not for us"
        lookup = {"signal": value, "signal_type": "pdq"}
        assert hma_a.get("/hma/m/lookup", lookup).json() == {}
        policy = hma_a.get("/api/v1/policy").json()
        [disabled] = policy["disabled_entries"]
        assert disabled["value"] == value and disabled["note"] == "not for us"
        # 1 is HMA's "enabled": the disable ends and the entry matches again.
        assert put_json(hma_a, path, {"disable_until_ts": 1}).json()["disable_until_ts"] == 1
        assert set(hma_a.get("/hma/m/lookup", lookup).json()) == {"CSAM"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"disable_until_ts": -1}, 400),
        ({"disable_until_ts": "soon"}, 400),
        ({"disable_until_ts": 0}, 400),  # HMA's "disabled for ever": HashHub's disables end
        ({"disable_until_ts": int(MOMENT.timestamp()) + 6 * 365 * 86400}, 400),
        ({"disable_until_ts": int(MOMENT.timestamp()) + 4 * 365 * 86400}, 400),  # over 3 years
        ({"note": "x" * 256}, 400),
        ({"note": "alone"}, 400),  # a note is kept with a disable only
    ],
)
def test_putting_content_refuses_what_cannot_be_honoured(
    hma_a: Client, body: Any, status: int
) -> None:
    with time_machine.travel(MOMENT, tick=False):
        content_id = bank_signal(hma_a, "CSAM", {"md5": secrets.token_hex(16)}).json()["id"]
        response = put_json(hma_a, f"/hma/c/bank/CSAM/content/{content_id}", body)
    assert response.status_code == status
    error_code(response)


def test_deleting_content_tombstones_the_entry(hma_a: Client, org_a: Organization) -> None:
    md5 = secrets.token_hex(16)
    content_id = bank_signal(hma_a, "CSAM", {"md5": md5}).json()["id"]
    path = f"/hma/c/bank/CSAM/content/{content_id}"
    assert hma_a.delete(path).json() == {"deleted": 1}
    assert hma_a.delete(path).status_code == 404  # gone, as any id not in the bank
    with scope(organization=org_a.pk):
        assert Entry.objects.get(hma_id=content_id).removed_seq is not None
    assert hma_a.get("/hma/m/lookup", {"signal": md5, "signal_type": "md5"}).json() == {}


def test_adding_content_by_upload_hashes_it_in_memory(hma_a: Client) -> None:
    png = encode(synthetic_image(seed=8))
    response = hma_a.post(
        "/hma/c/bank/CSAM/content?types=pdq,md5",
        {"photo": SimpleUploadedFile("c.png", png), "note": "seen in report 7"},
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body["signals"]) == {"pdq", "md5"}
    assert set(body["ids"]) == {"pdq", "md5"} and body["id"] == body["ids"]["pdq"]
    content = hma_a.get(f"/hma/c/bank/CSAM/content/{body['ids']['md5']}").json()
    assert content["note"] == "seen in report 7"
    no_file = post_json(hma_a, "/hma/c/bank/CSAM/content", {"metadata": {"content_id": "7"}})
    assert no_file.status_code == 400


# --- authentication, scopes, tenancy, anonymity ---------------------------------------------


def test_the_key_works_as_basic_user_or_password_and_as_bearer(org_a: Organization) -> None:
    _, secret = make_key(org_a, ALL)
    for client in (basic(secret), basic(secret, as_password=True)):
        assert client.get("/hma/c/banks").status_code == 200
    as_bearer = Client(headers={"Authorization": f"Bearer {secret}"})
    assert as_bearer.get("/hma/c/banks").status_code == 200


@pytest.mark.parametrize(
    "header",
    [None, "Basic !!!not-base64", "Basic " + base64.b64encode(b"hh_unknown:").decode()],
)
def test_no_key_or_a_wrong_one_is_401(db: None, header: str | None) -> None:
    client = Client(headers={"Authorization": header} if header else None)
    response = client.get("/hma/c/banks")
    assert response.status_code == 401
    error_code(response)


@pytest.mark.parametrize(
    ("method", "path", "scope_needed"),
    [
        ("get", "/hma/m/lookup?signal=" + "00" * 16 + "&signal_type=md5", "match"),
        ("post", "/hma/c/banks", "lists:admin"),
        ("post", "/hma/c/bank/CSAM/signal", "lists:write"),
        ("delete", "/hma/c/bank/CSAM", "lists:admin"),
    ],
)
def test_each_route_needs_the_scope_api_v1_needs(
    org_a: Organization, method: str, path: str, scope_needed: str
) -> None:
    client = bearer(org_a, [s for s in ALL if s != scope_needed])
    response = getattr(client, method)(path, {"name": "X"}, content_type="application/json")
    assert response.status_code == 403
    assert error_code(response) == "permission_denied"


def test_another_organisations_bank_is_404(hma_a: Client, org_b: Organization) -> None:
    new_list(org_b, "B_PRIVATE")
    b_client = bearer(org_b)
    content_id = bank_signal(b_client, "B_PRIVATE", {"md5": secrets.token_hex(16)}).json()["id"]
    assert hma_a.get("/hma/c/bank/B_PRIVATE").status_code == 404
    assert hma_a.get(f"/hma/c/bank/B_PRIVATE/content/{content_id}").status_code == 404
    assert bank_signal(hma_a, "B_PRIVATE", {"md5": secrets.token_hex(16)}).status_code == 404
    assert hma_a.delete("/hma/c/bank/B_PRIVATE").status_code == 404
    # Nor can A reach B's content through its own bank of the same name.
    assert hma_a.get(f"/hma/c/bank/CSAM/content/{content_id}").status_code == 404


def test_an_anonymous_list_is_a_read_only_bank_that_never_names_its_owner(
    hma_a: Client, org_a: Organization, org_b: Organization
) -> None:
    value = random_pdq()
    hidden = new_list(org_b, "Shared finds")
    add(hidden, ("pdq", value))
    share(hidden, "anonymous")
    subscribe(org_a, hidden)
    publish()  # others' access to an anonymous list starts with a publication
    banks = hma_a.get("/hma/c/banks").content.decode()
    name = f"COMMUNITY_SHARED_FINDS_{selectors._id6(hidden.public_id)}"
    assert name in banks
    assert "Org B" not in banks and "ORG_B" not in banks and org_b.slug not in banks
    found = hma_a.get("/hma/m/lookup", {"signal": value, "signal_type": "pdq"}).json()
    [match] = found[name]
    content = hma_a.get(f"/hma/c/bank/{name}/content/{match['bank_content_id']}")
    assert content.status_code == 200
    assert "Org B" not in content.content.decode()
    refused = bank_signal(hma_a, name, {"md5": secrets.token_hex(16)})
    assert refused.status_code == 403
    assert error_code(refused) == "read_only_bank"
    assert hma_a.delete(f"/hma/c/bank/{name}").status_code == 403


def test_unknown_paths_under_hma_are_a_json_404(hma_a: Client) -> None:
    response = hma_a.get("/hma/c/exchanges")
    assert response.status_code == 404
    assert error_code(response) == "not_found"
