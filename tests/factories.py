"""Factories for the fixed characters of the suite and anything else a test needs."""

from __future__ import annotations

import factory
from allauth.account.models import EmailAddress

from hub.models import Membership, Organization, User
from hub.permissions import Role

PASSWORD = "correct horse battery staple 42"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def verified(obj: User, create: bool, extracted: object, **kwargs: object) -> None:  # noqa: N805
        if create:
            obj.save()
            EmailAddress.objects.create(user=obj, email=obj.email, verified=True, primary=True)


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")
    approved = True

    @factory.post_generation
    def own_lists(obj: Organization, create: bool, extracted: object, **kwargs: object) -> None:  # noqa: N805
        # As organization_create does: every organisation has its own CSAM and SE lists.
        if create:
            from django_scopes import scope

            from hub.audit import Actor
            from lists.services import lists_create_defaults

            with scope(organization=obj.pk):
                lists_create_defaults(org=obj, actor=Actor(system="test"))


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.VIEWER
