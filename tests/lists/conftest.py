from __future__ import annotations

from collections.abc import Iterator

import pytest
from django_scopes import scope

from hub.models import Organization
from lists.models import HashList


@pytest.fixture
def a_scope(org_a: Organization) -> Iterator[None]:
    with scope(organization=org_a.pk):
        yield


@pytest.fixture
def csam_a(org_a: Organization, a_scope: None) -> HashList:
    return HashList.objects.get(organization=org_a, category="csam", is_default=True)


@pytest.fixture
def se_a(org_a: Organization, a_scope: None) -> HashList:
    return HashList.objects.get(organization=org_a, category="se", is_default=True)
