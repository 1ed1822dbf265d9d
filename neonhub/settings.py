"""Settings for the NeonHub agent scheduler.

This is the only module that reads the environment. Every value has a small
parser that fails loudly on a bad value, so a typo in a deployment stops the
process at start instead of misbehaving later.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import overload
from urllib.parse import urlsplit

import dj_database_url
import dj_email_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent

# A local .env (written by `make run` on first start) fills in what the real
# environment leaves unset; the real environment always wins.
load_dotenv(BASE_DIR / ".env", override=False)


@overload
def env_str(name: str, default: str) -> str: ...
@overload
def env_str(name: str, default: None = None) -> str | None: ...
def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool) -> bool:
    value = env_str(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = env_str(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    value = env_str(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = env_str(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_limits(name: str, value: str, known: set[str]) -> dict[str, int]:
    """``"webhook=2,python=1"`` as ``{"webhook": 2, "python": 1}``; every key one of ``known``.

    Strict, since a limit that does not parse or names no agent type would
    otherwise be silently no limit at all.
    """
    limits: dict[str, int] = {}
    for entry in value.split(","):
        key, equals, number = (part.strip() for part in entry.partition("="))
        if not key or not equals or not number:
            raise ImproperlyConfigured(
                f"{name} entries must be TYPE=N separated by commas, got {entry.strip()!r} "
                f"in {value!r}"
            )
        if key not in known:
            raise ImproperlyConfigured(
                f"{name} names {key!r}, which is not a registered agent type "
                f"(registered: {', '.join(sorted(known))}; AGENT_EXTRA_RUNNERS adds more)"
            )
        if key in limits:
            raise ImproperlyConfigured(f"{name} names {key!r} twice")
        try:
            limit = int(number)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} limit for {key!r} must be an integer, got {number!r}"
            ) from None
        if limit < 1:
            raise ImproperlyConfigured(f"{name} limit for {key!r} must be at least 1, got {limit}")
        limits[key] = limit
    return limits


def daily_at(name: str, value: str) -> crontab:
    """``"HH:MM"`` (UTC, beat's zone) as a daily crontab; anything else stops the process."""
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value.strip())
    if match is None:
        raise ImproperlyConfigured(f"{name} must be a time of day as HH:MM, got {value!r}")
    return crontab(hour=int(match[1]), minute=int(match[2]))


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if SECRET_KEY is None:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-only-used-with-debug-on"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
PORT = env_int("PORT", 8000, minimum=1)

# --- Served over HTTPS ----------------------------------------------------------------

# One switch for a deployment whose every visitor comes over TLS: HTTP is
# redirected, cookies are sent over TLS only, and browsers are told (HSTS) to
# use nothing else. The HSTS defaults are what `check --deploy` asks for.
HTTPS = env_bool("HTTPS", False)
if HTTPS:
    SECURE_SSL_REDIRECT = True
    # A load balancer's health check and a Prometheus scrape often come over
    # plain HTTP from inside the network; a redirect would fail them.
    SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^metrics/?$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)

# Behind a proxy that ends TLS: the request header (as a META key) and value
# that mark a request the proxy received over HTTPS, e.g.
# "HTTP_X_FORWARDED_PROTO,https". The proxy must set it on every request, or
# a client could claim HTTPS by sending it.
_proxy_ssl_header = env_list("SECURE_PROXY_SSL_HEADER", [])
if _proxy_ssl_header:
    if len(_proxy_ssl_header) != 2 or not re.fullmatch(r"HTTP_[A-Z0-9_]+", _proxy_ssl_header[0]):
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER must be HEADER,VALUE with the header as a request META key, "
            f"e.g. HTTP_X_FORWARDED_PROTO,https; got {env_str('SECURE_PROXY_SSL_HEADER')!r}"
        )
    SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header[0], _proxy_ssl_header[1])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "agents",
    "realtime",
    "scheduling",
    "web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before the CSRF check, so every sign-in POST counts, whatever its answer.
    "web.sign_in_limit.SignInRateLimitMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "neonhub.urls"
# Every API path answers with and without a trailing slash by its own pattern;
# redirecting would turn a POST into a GET for some clients.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "neonhub.wsgi.application"
ASGI_APPLICATION = "neonhub.asgi.application"

# --- Database -----------------------------------------------------------------

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # web, worker and beat write to the same file at once: WAL lets readers
    # go on during a write, the busy timeout makes writers wait instead of
    # failing, and IMMEDIATE transactions take the write lock up front so two
    # transactions never deadlock upgrading a read lock.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Integration tests start worker processes that must see the test data,
    # so the test database is a file, never SQLite's private in-memory one.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test_db.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool(
    "DATABASE_POOL", not DATABASES["default"]["CONN_MAX_AGE"]
):
    # Celery closes the connection after every task and Django after every
    # request; without a pool each of them pays for a new PostgreSQL backend
    # (a few milliseconds of fork and authentication). The pool hands back a
    # warm connection, checked first so one the server dropped is replaced.
    if DATABASES["default"]["CONN_MAX_AGE"]:
        raise ImproperlyConfigured("DATABASE_POOL and DATABASE_CONN_MAX_AGE cannot both be set.")
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 0,
        "max_size": env_int("DATABASE_POOL_MAX_SIZE", 20, minimum=1),
        "timeout": env_float("DATABASE_POOL_TIMEOUT", 30.0, minimum=0.1),
        "max_idle": 300,
    }
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # the pool's check on every checkout

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Lets the stack serve its own static files without a collectstatic step in
# development and tests.
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "/dashboard/login/"

# --- Redis, Celery, Channels ------------------------------------------------------

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")


def channel_layer_prefix(redis_url: str) -> str:
    """Channel names for this deployment's Redis database.

    Redis pub/sub channels belong to the whole server, whatever database a
    client selected: deployments (or test runs) sharing a server on different
    databases would hear each other's events without the number in the name.
    """
    database = urlsplit(redis_url).path.strip("/") or "0"
    return f"neonhub:channels:{database}:"


SCHEDULER_MAX_CONCURRENT = env_int("SCHEDULER_MAX_CONCURRENT", 5, minimum=1)
# Running sessions one user may have at once, across all workers; 0: only the global cap.
SCHEDULER_MAX_CONCURRENT_PER_USER = env_int("SCHEDULER_MAX_CONCURRENT_PER_USER", 0, minimum=0)
SCHEDULER_MAX_RETRIES = env_int("SCHEDULER_MAX_RETRIES", 3, minimum=0)
SCHEDULER_BACKOFF_BASE = env_int("SCHEDULER_BACKOFF_BASE", 1000, minimum=0)  # ms
SCHEDULER_BACKOFF_MAX = env_int("SCHEDULER_BACKOFF_MAX", 300_000, minimum=0)  # ms
SCHEDULER_CHECK_INTERVAL = env_int("SCHEDULER_CHECK_INTERVAL", 5000, minimum=100)  # ms
SCHEDULER_STATUS_INTERVAL = env_int("SCHEDULER_STATUS_INTERVAL", 10, minimum=1)  # s
# A run holds its concurrency slot through a lease its worker renews; a worker
# that dies stops renewing and the slot is reclaimed once the lease expires.
SCHEDULER_LEASE_SECONDS = env_int("SCHEDULER_LEASE_SECONDS", 30, minimum=3)
# After downtime, beat fires each agent's latest missed slot once if it is this recent.
SCHEDULER_CATCHUP_SECONDS = env_int("SCHEDULER_CATCHUP_SECONDS", 300, minimum=60)
SCHEDULER_RUN_TIMEOUT = env_int("SCHEDULER_RUN_TIMEOUT", 3600, minimum=1)  # s
SCHEDULER_PROGRESS_MIN_INTERVAL = env_float("SCHEDULER_PROGRESS_MIN_INTERVAL", 0.25, minimum=0)
# Finished sessions older than this many days, and those beyond an agent's
# newest N, are deleted daily (0 keeps them); queued and running ones never.
SESSION_RETENTION_DAYS = env_int("SESSION_RETENTION_DAYS", 90, minimum=0)
SESSION_RETENTION_PER_AGENT = env_int("SESSION_RETENTION_PER_AGENT", 10_000, minimum=0)
# Time of the daily prune, "HH:MM" in UTC: a quiet hour.
SESSION_RETENTION_AT = env_str("SESSION_RETENTION_AT", "03:30")

_beat_interval = SCHEDULER_CHECK_INTERVAL / 1000

CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Stacks sharing one Redis database (say, two test runs) keep apart by queue name.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "neonhub")
# Waiting runs live in the database, ordered by priority there, and only
# admitted runs become broker messages, none with a countdown (see
# scheduling/later.py); so messages never wait long and the default
# visibility timeout is ample.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    "queue_order_strategy": "priority",
    "priority_steps": list(range(10)),
    "sep": ":",
}
CELERY_BEAT_SCHEDULER = "scheduling.beat:AgentScheduler"
CELERY_BEAT_MAX_LOOP_INTERVAL = _beat_interval
CELERY_BEAT_SCHEDULE = {
    "neonhub-scheduler-tick": {
        "task": "scheduling.tick",
        "schedule": max(_beat_interval, 1.0),
        "options": {"expires": max(_beat_interval, 1.0) * 2},
    },
    "neonhub-scheduler-status": {
        "task": "scheduling.publish_status",
        "schedule": float(SCHEDULER_STATUS_INTERVAL),
        "options": {"expires": float(SCHEDULER_STATUS_INTERVAL) * 2},
    },
    "neonhub-prune-sessions": {
        "task": "scheduling.prune_sessions",
        "schedule": daily_at("SESSION_RETENTION_AT", SESSION_RETENTION_AT),
        # A prune missed by a stopped beat is done by the next day's.
        "options": {"expires": 3600.0},
    },
    # Run statistics' daily rollups (agents.run_stats): written by the first
    # request for a day that is over, or here, whichever comes first.
    "neonhub-roll-up-run-days": {
        "task": "scheduling.roll_up_run_days",
        "schedule": 3600.0,
        "options": {"expires": 3600.0},
    },
}
DJANGO_CELERY_BEAT_TZ_AWARE = True

# "pubsub" (the default) or "core"; every web and worker process must use the
# same one, the two do not hear each other. The pub/sub layer costs a web
# process one Redis message per event and group instead of waking each
# consumer through the core layer's shared receive lock, and its sockets
# survive a Redis restart (the core layer's consumers die with their
# blocking pop); docs/performance.md section 3 has the figures.
CHANNEL_LAYER_BACKEND = env_str("CHANNEL_LAYER_BACKEND", "pubsub")
if CHANNEL_LAYER_BACKEND == "core":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 reads with a 5 s socket timeout by default: exactly the
                # length of channels-redis' blocking BZPOPMIN, so idle consumers
                # would die with "Timeout reading from ...". The blocking pop has
                # its own server-side timeout; the client needs none.
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                "prefix": "neonhub:channels:",
                # A browser tab that stalls for a while should not lose events:
                # 1,000 frames of room and a message lifetime of two minutes.
                "capacity": env_int("CHANNELS_CAPACITY", 1000, minimum=10),
                "expiry": 120,
                # Group membership is refreshed by each consumer well inside this.
                "group_expiry": 86400,
            },
        }
    }
elif CHANNEL_LAYER_BACKEND == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                # One Redis message per event and web process, fanned out to the
                # process's consumers in memory. Nothing blocks on a read here,
                # so reads keep a timeout: a Redis that hangs fails a send
                # instead of holding the layer's lock for ever.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 5}],
                "prefix": channel_layer_prefix(REDIS_URL),
            },
        }
    }
else:
    raise ImproperlyConfigured(
        f"CHANNEL_LAYER_BACKEND must be core or pubsub, got {CHANNEL_LAYER_BACKEND!r}"
    )

WS_MAX_CONNECTIONS_PER_USER = env_int("WS_MAX_CONNECTIONS_PER_USER", 5, minimum=1)
WS_CONNECTION_LEASE_SECONDS = env_int("WS_CONNECTION_LEASE_SECONDS", 30, minimum=2)
WS_MAX_FRAME_BYTES = env_int("WS_MAX_FRAME_BYTES", 4096, minimum=64)
WS_MAX_ROOMS_PER_CONNECTION = env_int("WS_MAX_ROOMS_PER_CONNECTION", 100, minimum=2)

# --- Agents ------------------------------------------------------------------------

AGENT_RUNNERS: dict[str, str] = {
    "demo": "agents.runners.demo.DemoRunner",
    "webhook": "agents.runners.webhook.WebhookRunner",
    "python": "agents.runners.python.PythonRunner",
}
# Deployments add their own types as "TYPE=package.module.Class,...".
for _entry in env_list("AGENT_EXTRA_RUNNERS", []):
    _type, _, _path = _entry.partition("=")
    if not _type or not _path:
        raise ImproperlyConfigured(f"AGENT_EXTRA_RUNNERS entry {_entry!r} must be TYPE=dotted.path")
    AGENT_RUNNERS[_type.strip()] = _path.strip()

# Running sessions per agent type across all workers, "TYPE=N,..."; read
# here, once the types are known, so a misspelt type stops the process.
_type_limits = env_str("SCHEDULER_TYPE_LIMITS")
SCHEDULER_TYPE_LIMITS = (
    parse_limits("SCHEDULER_TYPE_LIMITS", _type_limits, set(AGENT_RUNNERS)) if _type_limits else {}
)

AGENT_WEBHOOK_ALLOWED_HOSTS = env_list("AGENT_WEBHOOK_ALLOWED_HOSTS", [])
AGENT_PYTHON_CALLABLES = env_list("AGENT_PYTHON_CALLABLES", [])

# --- Alerts ----------------------------------------------------------------------------

# Alert emails go through Django's email backend: EMAIL_URL names it
# ("smtp://user:password@host:587/?tls=True", "console:", ...). Without it,
# mail is printed with DEBUG on and sent to an SMTP server on localhost:25
# otherwise, which fails visibly on the channel until one is configured.
_email_url = env_str("EMAIL_URL")
if _email_url:
    _email = dj_email_url.parse(_email_url)
    EMAIL_BACKEND = _email["EMAIL_BACKEND"]
    EMAIL_HOST, EMAIL_PORT = _email["EMAIL_HOST"] or "localhost", _email["EMAIL_PORT"] or 25
    EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
    EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"] or ""
    EMAIL_USE_TLS, EMAIL_USE_SSL = _email["EMAIL_USE_TLS"], _email["EMAIL_USE_SSL"]
    EMAIL_FILE_PATH = _email["EMAIL_FILE_PATH"]
elif DEBUG:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env_str("ALERT_EMAIL_FROM", "NeonHub <neonhub@localhost>")
EMAIL_TIMEOUT = 10
# Seconds one webhook or Slack notification may take.
ALERT_SEND_TIMEOUT = env_float("ALERT_SEND_TIMEOUT", 10.0, minimum=0.1)
# A notification that fails is tried again after 5 s, 10 s, 20 s ... up to
# ALERT_RETRY_MAX_SECONDS between tries, ALERT_MAX_ATTEMPTS times in all.
ALERT_MAX_ATTEMPTS = env_int("ALERT_MAX_ATTEMPTS", 8, minimum=1)
ALERT_RETRY_BASE_SECONDS = env_float("ALERT_RETRY_BASE_SECONDS", 5.0, minimum=0.1)
ALERT_RETRY_MAX_SECONDS = env_float("ALERT_RETRY_MAX_SECONDS", 300.0, minimum=0.1)

# --- REST API ------------------------------------------------------------------------

API_RATE_LIMIT = env_str("API_RATE_LIMIT", "100/15m")
API_TOKEN_RATE_LIMIT = env_str("API_TOKEN_RATE_LIMIT", "10/m")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "web.api.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "web.api.renderers.EnvelopeJSONRenderer",
        "web.api.renderers.EnvelopeBrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "web.api.parsers.CamelCaseJSONParser",
        "djangorestframework_camel_case.parser.CamelCaseFormParser",
        "djangorestframework_camel_case.parser.CamelCaseMultiPartParser",
    ],
    "EXCEPTION_HANDLER": "web.api.exceptions.envelope_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["web.api.throttling.ApiRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "web.api.schema.EnvelopeAutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Never trust a client-sent X-Forwarded-For: per-address limits would be
    # trivially dodged. Behind a proxy, daphne's --proxy-headers sets the
    # client address (and the proxy must overwrite the header, not append).
    "NUM_PROXIES": 0,
}

JSON_CAMEL_CASE = {
    # Agent configuration and run input are the user's own documents: stored
    # and returned as sent.
    "JSON_UNDERSCOREIZE": {"ignore_fields": ("configuration", "input")},
}

SIMPLE_JWT = {
    "AUTH_HEADER_TYPES": ("Bearer",),
    "SIGNING_KEY": SECRET_KEY,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "NeonHub agent scheduler API",
    "DESCRIPTION": (
        "Run AI agents on cron schedules and watch them live.\n\n"
        'Every answer is JSON in an envelope: `{"success": true, "data": ...}`, '
        '`{"success": true, "message": ...}` for deletions, and '
        '`{"success": false, "error": ..., "details": ...}` for every error. Keys are '
        "camelCase. Send `Authorization: Bearer <access token>` from `POST /api/auth/token`. "
        "Every path also answers with a trailing slash. Requests are rate-limited per user "
        "(`API_RATE_LIMIT`, default 100 per 15 minutes; over it: 429 with `Retry-After`). "
        "Live events: the WebSocket `/ws/agents/`, described in docs/api/agent-scheduler.md."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "CAMELIZE_NAMES": False,
    # Request bodies get components of their own, which say what a request
    # must hold (minLength, the registered agent types) without binding answers.
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["web.api.schema.api_paths_without_trailing_slash"],
    "ENUM_NAME_OVERRIDES": {
        "AgentStatusEnum": "agents.models.AIAgent.Status",
        "SessionStatusEnum": "agents.models.ExecutionSession.Status",
        "AlertChannelKindEnum": "scheduling.models.AlertChannel.Kind",
        "AlertKindEnum": "scheduling.models.Incident.Kind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "drf_spectacular.contrib.djangorestframework_camel_case.camelize_serializer_fields",
    ],
}

# When set, /metrics answers only "Authorization: Bearer <METRICS_TOKEN>".
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's own console handler would print every record a second time.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.channels.server": {"level": "WARNING"},
    },
}
