"""HashHub settings, read from the environment only.

``HASHHUB_MODE`` picks the defaults:

* ``embedded`` (the default): the private PostgreSQL and Redis that ``python -m hub.embedded``
  starts under ``var/``, DEBUG on, e-mail printed to the console, a secret key generated once into
  ``var/secret_key`` (never into the repository).
* ``production``: nothing is assumed. ``DJANGO_SECRET_KEY``, ``DATABASE_URL``, ``REDIS_URL`` and
  ``DJANGO_ALLOWED_HOSTS`` must be set, and the HTTPS hardening `check --deploy` wants is on.
"""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from hub.lib.client_ip import trusted_proxy_networks
from hub.lib.env import env_bool, env_choice, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
MODE = env_choice("HASHHUB_MODE", "embedded", {"embedded", "production"})
EMBEDDED = MODE == "embedded"
VAR_DIR = Path(env_str("HASHHUB_VAR_DIR", str(BASE_DIR / "var")))

# Off by default even in the embedded mode: clients never see a traceback (invariant 6).
DEBUG = env_bool("DJANGO_DEBUG", False)


def _secret_key() -> str:
    if not EMBEDDED:
        return env_str("DJANGO_SECRET_KEY")
    explicit = env_str("DJANGO_SECRET_KEY", "")
    if explicit:
        return explicit
    # The embedded hub keeps a random key beside its data so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
if not EMBEDDED and len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 50 random characters.")


def _credential_keys() -> list[str]:
    """The Fernet keys of credentials stored on sources (HASHHUB_CREDENTIAL_KEYS, newest first).

    The embedded hub keeps a generated key beside its data when none is set. In production none
    is assumed: storing a credential, or running a source that has one, fails with a sentence
    naming this variable until it is set (lists.sources.stored_credentials).
    """
    explicit = env_list("HASHHUB_CREDENTIAL_KEYS", [])
    if explicit or not EMBEDDED:
        return explicit
    path = VAR_DIR / "credential_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # A Fernet key: 32 random bytes, URL-safe base64.
        path.write_text(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
        path.chmod(0o600)
    return [path.read_text().strip()]


ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"] if EMBEDDED else []
)
if not EMBEDDED and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must list the hub's host names.")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# The reverse proxies (addresses or networks) whose X-Forwarded-For is believed; empty trusts
# nobody, and every client is its socket's peer. hub.lib.client_ip is the one reader.
HASHHUB_TRUSTED_PROXIES = trusted_proxy_networks(env_list("HASHHUB_TRUSTED_PROXIES", []))
# The embedded servers' ports, as the launcher (hub/embedded.py) reads them, so that manage.py in
# a shell with the same variables finds the hub `make run` started.
_PG_PORT = env_int("HASHHUB_PG_PORT", 54329)
_REDIS_PORT = env_int("HASHHUB_REDIS_PORT", 63799)
_WEB_PORT = env_int("HASHHUB_WEB_PORT", 8000)
SITE_URL = env_str("HASHHUB_SITE_URL", f"http://127.0.0.1:{_WEB_PORT}" if EMBEDDED else None)

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_celery_beat",
    "hub",
    "lists",
    "sharing",
    "matching",
    "hma",
    "reports",
]

MIDDLEWARE = [
    # First, so that they see the whole stack: request latency for /metrics, and the request id
    # that JSON logs carry (hub.metrics, hub.logging).
    "hub.metrics.RequestMetricsMiddleware",
    "hub.logging.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "hub.middleware.RequestSizeLimitMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "hub.middleware.OrganizationMiddleware",
    "hub.middleware.InvalidFormStatusMiddleware",
]

ROOT_URLCONF = "hub.urls"
WSGI_APPLICATION = "hub.wsgi.application"
AUTH_USER_MODEL = "hub.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "hub.context_processors.organization",
            ],
        },
    },
]

DATABASE_URL = env_str(
    "DATABASE_URL", f"postgres://hashhub@127.0.0.1:{_PG_PORT}/hashhub" if EMBEDDED else None
)
if not DATABASE_URL.startswith(("postgres://", "postgresql://")):
    raise ImproperlyConfigured(
        "DATABASE_URL must be a PostgreSQL URL; no other database is supported."
    )
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", f"redis://127.0.0.1:{_REDIS_PORT}/0" if EMBEDDED else None)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "hashhub",
    }
}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
# Modules with tasks beyond the apps' tasks.py: matching.holds (hold e-mails, its daily purge),
# lists.sources.alerts (the overdue-source check), matching.staff_alerts (the staff webhook) and
# reports.listings (reported hashes that verified sources listed since).
CELERY_IMPORTS = (
    "matching.holds",
    "lists.sources.alerts",
    "matching.staff_alerts",
    "reports.listings",
)

SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("HASHHUB_SESSION_AGE_SECONDS", 60 * 60 * 12, minimum=300)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = ["allauth.account.auth_backends.AuthenticationBackend"]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "staticfiles")))
if EMBEDDED:
    # WhiteNoise warns about a missing root; the embedded hub serves from the finders instead.
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if EMBEDDED or DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# The embedded hub serves static files straight from the apps (no collectstatic step).
WHITENOISE_USE_FINDERS = EMBEDDED or DEBUG

# Invariant 1: no uploaded byte ever reaches disk. Uploads are held in memory and capped.
FILE_UPLOAD_HANDLERS = ["hub.uploads.MemoryOnlyUploadHandler"]
# The most matches one submitted hash returns (closest first); a request may ask for fewer.
HASHHUB_MAX_MATCHES_PER_HASH = env_int("HASHHUB_MAX_MATCHES_PER_HASH", 20, minimum=1)
# The most bits a perceptual match may ask for, per type (a request or an organisation's policy
# may ask less): never above what the match index supports (PDQ 31, pHash 10), which is also
# the default.
HASHHUB_MAX_DISTANCE = {
    "pdq": env_int("HASHHUB_MAX_DISTANCE_PDQ", 31, minimum=0),
    "phash": env_int("HASHHUB_MAX_DISTANCE_PHASH", 10, minimum=0),
}
HASHHUB_MAX_UPLOAD_BYTES = env_int("HASHHUB_MAX_UPLOAD_BYTES", 20 * 1024 * 1024, minimum=1024)
HASHHUB_MAX_IMAGE_PIXELS = env_int("HASHHUB_MAX_IMAGE_PIXELS", 50_000_000, minimum=1024)
# Hash files (text, never images) may be larger: a million PDQ lines is about 70 MB.
HASHHUB_MAX_HASH_FILE_BYTES = env_int(
    "HASHHUB_MAX_HASH_FILE_BYTES", 100 * 1024 * 1024, minimum=1024
)
FILE_UPLOAD_MAX_MEMORY_SIZE = max(HASHHUB_MAX_UPLOAD_BYTES, HASHHUB_MAX_HASH_FILE_BYTES)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("HASHHUB_MAX_BODY_BYTES", 10 * 1024 * 1024, minimum=1024)

# --- e-mail ---
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "HashHub <hub@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if EMBEDDED
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)

# --- accounts (django-allauth) ---
ACCOUNT_ADAPTER = "hub.adapters.AccountAdapter"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = False
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
# Sensitive steps (MFA, API keys) ask for the password or a second factor again; never only an
# e-mailed code, which would let whoever reads the mailbox switch MFA off.
ACCOUNT_REAUTHENTICATION_METHODS = ("password", "mfa")
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[HashHub] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "http" if EMBEDDED else "https"
ACCOUNT_RATE_LIMITS = {
    # Failed logins: at most 5 per 5 minutes for one account from one IP, 20 from one IP.
    "login_failed": env_str("HASHHUB_LOGIN_FAILED_RATE", "20/5m/ip,5/5m/key"),
    "login": "30/m/ip",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "confirm_email": "1/3m/key",
}
LOGIN_REDIRECT_URL = "/"
LOGIN_URL = "/accounts/login/"
MFA_ADAPTER = "hub.adapters.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_TOTP_ISSUER = "HashHub"
MFA_PASSKEY_LOGIN_ENABLED = False
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = EMBEDDED

# --- API ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["hub.api_auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["hub.api_auth.HasApiKey"],
    "DEFAULT_THROTTLE_CLASSES": ["hub.api_auth.ApiKeyThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env_str("HASHHUB_API_RATE", "600/min")},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "hub.api_parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "hub.api_errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "HashHub API",
    "DESCRIPTION": "Match hashes against pooled CSAM and SE hash lists; manage lists and exports.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name for the recommended action wherever it appears (a match, a rule, the default).
    "ENUM_NAME_OVERRIDES": {"RecommendedActionEnum": ["block", "review", "none"]},
}
HASHHUB_API_KEY_LAST_USED_RESOLUTION = timedelta(minutes=1)

# --- HashHub ---
HASHHUB_INVITATION_DAYS = env_int("HASHHUB_INVITATION_DAYS", 7, minimum=1)

# --- quotas per organisation (issue 18) ---
# Every organisation's quotas unless hub staff override them for it (hub.quotas, the staff page
# /staff/organizations/<slug>/quotas/): live entries per own list and across its own lists, own
# lists, active API keys, webhook endpoints, and image matches per minute (all its keys together).
HASHHUB_QUOTA_ENTRIES_PER_LIST = env_int("HASHHUB_QUOTA_ENTRIES_PER_LIST", 1_000_000, minimum=0)
HASHHUB_QUOTA_ENTRIES_TOTAL = env_int("HASHHUB_QUOTA_ENTRIES_TOTAL", 5_000_000, minimum=0)
HASHHUB_QUOTA_LISTS = env_int("HASHHUB_QUOTA_LISTS", 50, minimum=0)
HASHHUB_QUOTA_API_KEYS = env_int("HASHHUB_QUOTA_API_KEYS", 50, minimum=0)
HASHHUB_QUOTA_WEBHOOKS = env_int("HASHHUB_QUOTA_WEBHOOKS", 20, minimum=0)
HASHHUB_QUOTA_IMAGE_MATCHES_PER_MINUTE = env_int(
    "HASHHUB_QUOTA_IMAGE_MATCHES_PER_MINUTE", 60, minimum=0
)

# --- matching, detections and webhooks ---
# Detections older than this are purged by a daily beat task.
HASHHUB_DETECTION_RETENTION_DAYS = env_int("HASHHUB_DETECTION_RETENTION_DAYS", 90, minimum=1)
# Webhook delivery logs older than this are purged (hub.retention names every retention period).
HASHHUB_WEBHOOK_DELIVERY_RETENTION_DAYS = env_int(
    "HASHHUB_WEBHOOK_DELIVERY_RETENTION_DAYS", 30, minimum=1
)
# Reports (reports.models) are purged this many days after their last change, unless held.
HASHHUB_REPORT_RETENTION_DAYS = env_int("HASHHUB_REPORT_RETENTION_DAYS", 3 * 365, minimum=1)
# A filed report holds its detection, its report and its kept hashes this long past retention
# (matching.preservation); a hold placed by hand defaults to the same.
HASHHUB_PRESERVATION_HOLD_DAYS = env_int("HASHHUB_PRESERVATION_HOLD_DAYS", 365, minimum=1)
# A deleted organisation's data is purged this many days after the deletion (hub.offboarding);
# until then staff can restore it.
HASHHUB_ORG_DELETION_GRACE_DAYS = env_int("HASHHUB_ORG_DELETION_GRACE_DAYS", 30, minimum=1)
# A shared entry is reported ``disputed: true`` once this many organisations dispute it (open).
HASHHUB_DISPUTE_THRESHOLD = env_int("HASHHUB_DISPUTE_THRESHOLD", 2, minimum=1)
# Retroactive matching (matching.retroactive): the most submissions one organisation keeps (new
# ones beyond it are not kept; the match goes on), where the kept submissions' perceptual index
# is saved, and how many threads search it.
HASHHUB_RETROACTIVE_MAX_KEPT = env_int("HASHHUB_RETROACTIVE_MAX_KEPT", 1_000_000, minimum=0)
HASHHUB_RETROACTIVE_INDEX_DIR = Path(
    env_str("HASHHUB_RETROACTIVE_INDEX_DIR", str(VAR_DIR / "retroactive"))
)
HASHHUB_RETROACTIVE_THREADS = env_int("HASHHUB_RETROACTIVE_THREADS", 2, minimum=1)
# Match-rate holds (matching.holds): a hash in a shared community list is held when today at
# least HOLD_MIN_ORGS organisations matched it, at least HOLD_MIN_MATCHES times, and at least
# HOLD_RATE_FACTOR times its daily average over the 7 days before.
HASHHUB_HOLD_RATE_FACTOR = env_int("HASHHUB_HOLD_RATE_FACTOR", 20, minimum=1)
HASHHUB_HOLD_MIN_ORGS = env_int("HASHHUB_HOLD_MIN_ORGS", 5, minimum=1)
HASHHUB_HOLD_MIN_MATCHES = env_int("HASHHUB_HOLD_MIN_MATCHES", 50, minimum=1)
# Where the index snapshot task writes the memory-mapped arrays every web process loads.
# Feed files uploaded by staff for file-based sources (lists.sources.adapters.feed).
HASHHUB_FEED_DIR = Path(env_str("HASHHUB_FEED_DIR", str(VAR_DIR / "feeds")))
HASHHUB_INDEX_DIR = Path(env_str("HASHHUB_INDEX_DIR", str(VAR_DIR / "index")))
# Webhook URLs may not reach loopback, private, link-local or metadata addresses; networks listed
# here (CIDR, e.g. "127.0.0.1/32") are let through all the same. The tests allow 127.0.0.1.
# Upstream source imports: per-request timeout, attempts and first backoff delay (doubling).
HASHHUB_SOURCE_HTTP_TIMEOUT = float(env_int("HASHHUB_SOURCE_HTTP_TIMEOUT_SECONDS", 60, minimum=1))
HASHHUB_SOURCE_HTTP_ATTEMPTS = env_int("HASHHUB_SOURCE_HTTP_ATTEMPTS", 5, minimum=1)
HASHHUB_SOURCE_HTTP_BACKOFF = float(env_int("HASHHUB_SOURCE_HTTP_BACKOFF_SECONDS", 2, minimum=0))
# The most an upstream answer may hold, after gzip/deflate decompression (it is held in memory):
# a whole feed file fetched by URL, two and a half times an uploaded hash file's cap.
HASHHUB_SOURCE_MAX_BODY_BYTES = env_int(
    "HASHHUB_SOURCE_MAX_BODY_BYTES", 256 * 1024 * 1024, minimum=1024
)
HASHHUB_WEBHOOK_ALLOWED_NETWORKS = env_list("HASHHUB_WEBHOOK_ALLOWED_NETWORKS", [])
HASHHUB_WEBHOOK_TIMEOUT_SECONDS = env_int("HASHHUB_WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1)
HASHHUB_WEBHOOK_MAX_ATTEMPTS = env_int("HASHHUB_WEBHOOK_MAX_ATTEMPTS", 6, minimum=1)
# One delivery attempt is over by this deadline whatever the receiver does (connecting, TLS,
# sending and reading the whole answer together; the timeout above bounds each step within it).
HASHHUB_WEBHOOK_DEADLINE_SECONDS = env_int("HASHHUB_WEBHOOK_DEADLINE_SECONDS", 15, minimum=1)
# "Send test" pings per organisation: "<count>/<period>", period in s, m, h or d (fixed windows).
HASHHUB_WEBHOOK_TEST_RATE = env_str("HASHHUB_WEBHOOK_TEST_RATE", "5/10m")

# --- privacy and least privilege (issue 17) ---
# Changes to anonymous lists reach other organisations in batches released on this clock (minutes),
# so their timing cannot be paired with the owner's identified lists; the owner matches at once.
HASHHUB_ANONYMOUS_PUBLISH_MINUTES = env_int("HASHHUB_ANONYMOUS_PUBLISH_MINUTES", 10, minimum=1)
# The key of the ids non-owners see for entries (a keyed hash of the internal, time-ordered id);
# derived from SECRET_KEY when unset.
HASHHUB_PUBLIC_ID_KEY = env_str("HASHHUB_PUBLIC_ID_KEY", "")
# Staff pages need two-factor and a login (or re-authentication) within this many minutes.
HASHHUB_STAFF_REQUIRE_MFA = env_bool("HASHHUB_STAFF_REQUIRE_MFA", True)
HASHHUB_STAFF_REAUTH_MINUTES = env_int("HASHHUB_STAFF_REAUTH_MINUTES", 15, minimum=1)
# Members' sensitive actions (API keys, webhooks, roles, two-factor policy) ask for the password
# or a second factor again unless the member authenticated within this many minutes.
HASHHUB_REAUTH_MINUTES = env_int("HASHHUB_REAUTH_MINUTES", 10, minimum=1)
# The environment variables a source's ``*_env`` setting may name: only these reach a source.
HASHHUB_SOURCE_ENV_PREFIX = env_str("HASHHUB_SOURCE_ENV_PREFIX", "HASHHUB_SOURCE_")
# Fernet keys (comma-separated, newest first) for source credentials stored in the database;
# the embedded hub keeps a generated key beside its data when none is set.
HASHHUB_CREDENTIAL_KEYS = _credential_keys()
# Source and peer-hub URLs go through the same address guard as webhooks; hosts or networks
# (CIDR) listed here are let through, and only they may receive credentials over plain http.
HASHHUB_SOURCE_ALLOWED_HOSTS = env_list("HASHHUB_SOURCE_ALLOWED_HOSTS", [])

# --- operations (issue 20): metrics, alerts, logs ---
# /metrics answers hub staff's sessions, and requests bearing this token (empty: staff only).
HASHHUB_METRICS_TOKEN = env_str("HASHHUB_METRICS_TOKEN", "")
# Source incidents (lists.sources.alerts) are e-mailed to staff and POSTed here, signed with the
# secret like organisations' webhooks; the URL passes the same address guard (allow a private
# network with HASHHUB_WEBHOOK_ALLOWED_NETWORKS). Empty: e-mail only.
HASHHUB_STAFF_WEBHOOK_URL = env_str("HASHHUB_STAFF_WEBHOOK_URL", "")
HASHHUB_STAFF_WEBHOOK_SECRET = env_str("HASHHUB_STAFF_WEBHOOK_SECRET", "")
if HASHHUB_STAFF_WEBHOOK_URL and len(HASHHUB_STAFF_WEBHOOK_SECRET) < 16:
    raise ImproperlyConfigured(
        "HASHHUB_STAFF_WEBHOOK_SECRET must be set (16 characters or more) with the staff webhook."
    )
# A scheduled source is overdue once its next run after its last success is this late.
HASHHUB_SOURCE_OVERDUE_GRACE_MINUTES = env_int(
    "HASHHUB_SOURCE_OVERDUE_GRACE_MINUTES", 60, minimum=0
)
# "plain" (a line of text) or "json" (one object a line: time, level, logger, message, request
# id); hub.logging redacts hex runs and key-shaped text from both.
HASHHUB_LOG_FORMAT = env_choice("HASHHUB_LOG_FORMAT", "plain", {"plain", "json"})
# Celery workers and beat then log through LOGGING below too, rather than their own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = HASHHUB_LOG_FORMAT != "json"

CELERY_BEAT_SCHEDULE = {
    "publish-anonymous-lists": {
        "task": "sharing.publish_anonymous",
        "schedule": crontab(minute=f"*/{HASHHUB_ANONYMOUS_PUBLISH_MINUTES}")
        if HASHHUB_ANONYMOUS_PUBLISH_MINUTES < 60
        else crontab(minute=0, hour=f"*/{max(1, HASHHUB_ANONYMOUS_PUBLISH_MINUTES // 60)}"),
    },
    "end-due-entry-disables": {
        "task": "sharing.end_due_disables",
        "schedule": crontab(),
    },
    "purge-old-detections": {
        "task": "matching.purge_detections",
        "schedule": crontab(hour=3, minute=17),
    },
    "purge-old-webhook-deliveries": {
        "task": "matching.purge_webhook_deliveries",
        "schedule": crontab(hour=3, minute=37),
    },
    "purge-old-reports": {
        "task": "reports.purge_reports",
        "schedule": crontab(hour=3, minute=47),
    },
    "daily-detection-digest": {
        "task": "matching.send_digests",
        "schedule": crontab(hour=7, minute=0),
    },
    "reconcile-derived-state": {
        "task": "matching.reconcile",
        "schedule": crontab(hour=4, minute=23),
    },
    "match-index-snapshot": {
        "task": "matching.write_index_snapshot",
        "schedule": crontab(minute=41),
    },
    "retroactive-matching": {
        "task": "matching.retroactive_match",
        "schedule": crontab(),
    },
    "detection-retractions": {
        "task": "matching.retractions_run",
        "schedule": crontab(),
    },
    "report-listings": {
        "task": "reports.listings_run",
        "schedule": crontab(),
    },
    "purge-hold-counts": {
        "task": "matching.purge_hold_counts",
        "schedule": crontab(hour=0, minute=7),
    },
    "sources-overdue-check": {
        "task": "lists.sources_overdue_check",
        "schedule": crontab(minute="*/5"),
    },
    "purge-deleted-organizations": {
        "task": "hub.purge_deleted_organizations",
        "schedule": crontab(minute=29),
    },
}

# --- security hardening (on by default outside the embedded mode) ---
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if not EMBEDDED:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # Probes and Prometheus reach the web processes directly, inside the deployment's network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "hub.logging.JsonFormatter"},
    },
    # Hashes of uploads and keys never reach the log, whatever the format (hub.logging).
    "filters": {"redact": {"()": "hub.logging.RedactFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": HASHHUB_LOG_FORMAT,
            "filters": ["redact"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("HASHHUB_LOG_LEVEL", "INFO")},
    # httpx logs every request at INFO (source imports, webhooks): keep only its warnings.
    "loggers": {"django.request": {"level": "ERROR"}, "httpx": {"level": "WARNING"}},
}
