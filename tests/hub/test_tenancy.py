from __future__ import annotations

from typing import Any

import pytest
from django_scopes import ScopeError, scope

from hub.models import ApiKey, AuditEvent, Invitation, Organization
from tests.conftest import make_key

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("model", [ApiKey, AuditEvent, Invitation])
def test_a_tenant_owned_query_outside_a_scope_fails_loudly(model: Any) -> None:
    with pytest.raises(ScopeError):
        list(model.objects.all())


def test_inside_a_scope_only_that_organisations_rows_are_seen(
    org_a: Organization, org_b: Organization
) -> None:
    make_key(org_a, name="a-key")
    make_key(org_b, name="b-key")
    with scope(organization=org_b.pk):
        assert list(ApiKey.objects.values_list("name", flat=True)) == ["b-key"]
        assert not ApiKey.objects.filter(name="a-key").exists()


def test_charlie_gets_404_for_every_page_of_org_a(charlie_client: object, alice: object) -> None:
    for path in (
        "/o/org-a/",
        "/o/org-a/members/",
        "/o/org-a/keys/",
        "/o/org-a/audit/",
        "/o/org-a/settings/",
    ):
        assert charlie_client.get(path).status_code == 404, path  # type: ignore[attr-defined]
    # The same answer as for an organisation that does not exist at all.
    assert charlie_client.get("/o/no-such-org/").status_code == 404  # type: ignore[attr-defined]


def test_an_org_a_object_id_under_org_b_is_a_404(
    charlie_client: object, org_a: Organization
) -> None:
    key, _ = make_key(org_a)
    response = charlie_client.post(f"/o/org-b/keys/{key.public_id}/revoke/")  # type: ignore[attr-defined]
    assert response.status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None
