"""An organisation's match policy: what it matches and how (``GET|PUT /api/v1/policy``).

``policy_of`` is the one read of the per-organisation settings; ``policy_set`` (with its
validation) is the one write. What the policy turns off (sources, lists, categories, single
entries) is applied by the access rules in ``sharing.selectors``, so the export follows it.
"""

from __future__ import annotations

from django_scopes import scopes_disabled

from hub.models import Organization
from sharing.models import MatchPolicy


def policy_of(*, org: Organization) -> MatchPolicy:
    """The organisation's policy; an unsaved default one if it never set any."""
    with scopes_disabled():
        found = MatchPolicy.objects.filter(organization=org).first()
    return found if found is not None else MatchPolicy(organization=org)
