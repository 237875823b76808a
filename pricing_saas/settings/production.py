"""Production settings: every required setting must come from the environment, and start-up
stops with a message that names what is missing or unsafe."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env

REQUIRED = {
    "SECRET_KEY": "50+ random characters, e.g. from secrets.token_urlsafe(50)",
    "DATABASE_URL": "postgres://ROLE:PASSWORD@HOST:5432/DB, ROLE neither superuser nor BYPASSRLS",
    "ALLOWED_HOSTS": "the comma-separated host names the portal and API are served on",
    "CELERY_BROKER_URL": "redis://HOST:6379/0 or amqp://USER:PASSWORD@HOST:5672//",
}
_missing = [name for name in REQUIRED if not env(name, default="")]
if _missing:
    lines = "\n".join(f"  {name}: {REQUIRED[name]}" for name in _missing)
    raise ImproperlyConfigured(f"production settings need these environment variables:\n{lines}")

DEBUG = False
SECRET_KEY = env("SECRET_KEY")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("insecure"):
    raise ImproperlyConfigured(
        "SECRET_KEY is too short or a development value; use 50+ random characters."
    )
REQUIRE_RLS_SAFE_DB_ROLE = True  # never switched off in production
FIELD_ENCRYPTION_DERIVE_FROM_SECRET = False  # shop credentials need FIELD_ENCRYPTION_KEYS
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Probes and scrapes reach the hosts directly over plain HTTP: never redirected to HTTPS.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
CACHES = {
    "default": env.cache(
        "CACHE_URL",
        default=env("CELERY_BROKER_URL")
        if env("CELERY_BROKER_URL").startswith("redis")
        else "locmemcache://",
    )
}
