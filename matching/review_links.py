"""Links from a detection to the platform's own moderation tool (issue 19, the review queue).

HashHub never holds the image, so an organisation may set a link template such as
``https://moderation.example/item/{content_ref}``: each detection's ``content_ref`` becomes a
link there (on the review pages, and ``content_link`` in the detections API). The template lives
on the organisation's match policy (``sharing.models.MatchPolicy.link_template``);
:func:`link_template_validate` is the one check of it, for this settings form and the policy API.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from django.db import transaction
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.audit import Actor, audit
from hub.errors import ServiceError
from hub.models import Organization
from sharing.models import MatchPolicy
from sharing.policy import policy_of

PLACEHOLDER = "{content_ref}"
MAX_TEMPLATE = 500


def _invalid(message: str) -> ServiceError:
    return ServiceError(
        "invalid_link_template",
        message,
        {"example": "https://moderation.example/item/{content_ref}"},
    )


def link_template_validate(text: str) -> str:
    """The template, stripped, if it is usable; ``""`` (no link) for an empty one.

    A usable template is an http or https URL with a host, of at most 500 characters, with
    ``{content_ref}`` in it (any number of times) and no other brace. Raises ServiceError
    ``invalid_link_template`` with a sentence saying what is wrong.
    """
    if not isinstance(text, str):
        raise _invalid("The link template must be text.")
    template = text.strip()
    if not template:
        return ""
    if len(template) > MAX_TEMPLATE:
        raise _invalid(f"The link template takes at most {MAX_TEMPLATE} characters.")
    if PLACEHOLDER not in template:
        raise _invalid("The link template must contain {content_ref}, where the reference goes.")
    if "{" in template.replace(PLACEHOLDER, "") or "}" in template.replace(PLACEHOLDER, ""):
        raise _invalid("The only placeholder a link template may hold is {content_ref}.")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in template):
        raise _invalid("The link template must not contain spaces or control characters.")
    try:
        parts = urlsplit(template.replace(PLACEHOLDER, "ref"))
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        raise _invalid("The link template is not a valid URL.") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise _invalid("The link template must start with https:// or http://.")
    if not parts.hostname:
        raise _invalid("The link template needs a host name.")
    if parts.username is not None or parts.password is not None:
        raise _invalid("The link template must not contain a user name or password.")
    return template


def content_link(template: str, content_ref: str) -> str | None:
    """The link for ``content_ref`` under ``template``, or None when either is empty.

    The reference is percent-encoded entirely (``/``, ``?``, ``#`` and ``&`` too), so it stays
    one value wherever the template puts it and cannot change the link's host or scheme.
    """
    if not template or not content_ref:
        return None
    return template.replace(PLACEHOLDER, quote(content_ref, safe=""))


def link_template_of(*, org: Organization) -> str:
    """The organisation's link template (``""`` when it has none)."""
    return policy_of(org=org).link_template or ""


@transaction.atomic
def link_template_set(*, org: Organization, template: str, actor: Actor) -> str:
    """Set (or, with ``""``, clear) the organisation's link template; returns it as stored.

    Validates it (ServiceError ``invalid_link_template``), writes it on the match policy (made
    if the organisation has none yet) and an audit event ``policy.link_template_set`` with the
    old and new template. Setting the same template again changes and audits nothing.
    """
    cleaned = link_template_validate(template)
    with scopes_disabled():
        policy, _ = MatchPolicy.objects.select_for_update().get_or_create(organization=org)
    previous = policy.link_template
    if previous == cleaned:
        return cleaned
    policy.link_template = cleaned
    policy.updated = timezone.now()
    policy.save(update_fields=["link_template", "updated"])
    audit(
        actor=actor,
        action="policy.link_template_set",
        organization=org,
        target_type="policy",
        target_id=org.slug,
        metadata={"previous": previous, "template": cleaned},
    )
    return cleaned
