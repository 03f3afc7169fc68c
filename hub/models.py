"""Accounts, organisations and their members, invitations, API keys and the audit log."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.contrib.postgres.fields import ArrayField
from django.db import models, transaction
from django.dispatch import Signal
from django.utils import timezone
from django_scopes import ScopedManager

from hub.lib.ids import new_public_id
from hub.permissions import Role


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("Users need an e-mail address.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        # Django's ``createsuperuser`` comes here: staff status goes through the one audited
        # service, like every other grant. The services import the models, so the grant is
        # asked for by a signal (hub.account_audit answers it), not by importing them here.
        staff = extra.pop("is_staff", True)
        extra.setdefault("is_superuser", True)
        with transaction.atomic():
            user = self.create_user(email, password, **extra)
            superuser_created.send(sender=type(user), user=user, staff=staff)
            user.refresh_from_db()
            return user


superuser_created = Signal()
"""Sent with ``user`` and ``staff`` by :meth:`UserManager.create_superuser`, inside its
transaction: the receiver grants the staff status through ``hub.services.user_set_staff``."""


class User(AbstractUser):
    """A person. Identified by e-mail; belongs to organisations through memberships."""

    username = None  # type: ignore[assignment]
    email = models.EmailField("e-mail address", unique=True)
    name = models.CharField(max_length=150, blank=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    objects = UserManager()  # type: ignore[misc, assignment]

    def __str__(self) -> str:
        return self.email


class Organization(models.Model):
    """A member organisation: the tenant. Staff approve it before it sees anything shared."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    approved = models.BooleanField(default=False)
    approved_at = models.DateTimeField(null=True, blank=True)
    require_mfa = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)
    # Offboarding (hub.offboarding): deleted by an owner or staff, hidden from then on; staff can
    # restore it until ``purge_after``. Then its data is purged (``purged_at``: its lists'
    # entries tombstoned, its tenant rows deleted) and a day later the tombstoned entries erased
    # (``erased_at``). The row itself stays, renamed, for the append-only audit log's lines.
    deleted_at = models.DateTimeField(null=True, blank=True)
    purge_after = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's role in one organisation. Not scoped: a user's org list spans tenants."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=("organization", "user"), name="one_membership_per_org"),
        )
        ordering = ("created",)

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} as {self.role}"


class Invitation(models.Model):
    """An e-mailed invitation to join an organisation with a role, valid until it expires."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations"
    )
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices)
    # Only a SHA-256 of the token in the e-mailed link is kept.
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[models.Manager[Invitation]] = ScopedManager(organization="organization")

    class Meta:
        ordering = ("-created",)

    def __str__(self) -> str:
        return f"invitation of {self.email} to {self.organization_id}"

    @property
    def status(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"


class ApiKey(models.Model):
    """A secret an integration uses to call the API for one organisation, with scopes.

    The secret is shown once; only its SHA-256 is stored. The prefix is shown to tell keys apart.
    """

    class Scope(models.TextChoices):
        MATCH = "match", "match"
        LISTS_READ = "lists:read", "lists:read"
        LISTS_WRITE = "lists:write", "lists:write"
        LISTS_ADMIN = "lists:admin", "lists:admin"
        EXPORT = "export", "export"
        REVIEW = "review", "review"
        REPORTS = "reports", "reports"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="api_keys"
    )
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64, unique=True)
    scopes = ArrayField(models.CharField(max_length=16, choices=Scope.choices), default=list)
    created = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # From this moment on the key is refused (401 ``key_expired``); None: it never expires.
    expires_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[models.Manager[ApiKey]] = ScopedManager(organization="organization")

    # Not stored: the value of the ``also`` query answered with the key's lookup
    # (hub.services.api_key_authenticate), for the request that presented it.
    lookup_also: Any = None

    class Meta:
        ordering = ("-created",)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def active(self) -> bool:
        """Neither revoked nor expired: calls with it are served."""
        return self.revoked_at is None and not self.expired

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class AuditQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise PermissionError("Audit events are append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("Audit events are append-only.")


class AuditEvent(models.Model):
    """One append-only line of the audit log. A database trigger refuses UPDATE and DELETE too."""

    class ActorType(models.TextChoices):
        USER = "user", "user"
        API_KEY = "api_key", "API key"
        SYSTEM = "system", "system"

    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_type = models.CharField(max_length=8, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # A snapshot of who acted (e-mail, key name or process) that outlives renames.
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=40, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    objects: ClassVar[models.Manager[AuditEvent]] = ScopedManager(
        organization="organization", _manager_class=models.Manager.from_queryset(AuditQuerySet)
    )

    class Meta:
        ordering = ("-created", "-id")
        indexes = (models.Index(fields=("organization", "-created")),)

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M} {self.actor_label} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise PermissionError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("Audit events are append-only.")


class OrganizationQuota(models.Model):
    """Hub staff's overrides of one organisation's quotas (hub.quotas); None takes the default.

    Not tenant-scoped: one row per organisation, always looked up by it, read by staff across
    organisations and by the image-match throttle before the API opens the tenant scope.
    """

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="quota"
    )
    entries_per_list = models.PositiveBigIntegerField(null=True, blank=True)
    entries_total = models.PositiveBigIntegerField(null=True, blank=True)
    lists = models.PositiveIntegerField(null=True, blank=True)
    api_keys = models.PositiveIntegerField(null=True, blank=True)
    webhooks = models.PositiveIntegerField(null=True, blank=True)
    image_matches_per_minute = models.PositiveIntegerField(null=True, blank=True)
    updated = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"quotas of {self.organization_id}"
