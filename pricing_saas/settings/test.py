"""Test settings: the same real Postgres (DATABASE_URL or the embedded server), Celery eager
unless a test starts a real worker, fast password hashing."""

from .base import *  # noqa: F403
from .base import REST_FRAMEWORK, STORAGES, env

DEBUG = False
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
STORAGES = {  # the media storage of base (MEDIA_STORAGE); static files uncompressed
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"api_key": env("API_THROTTLE_RATE", default="100000/minute")},
}
# Live-server threads must not keep connections open past a test (the test DB is dropped after).
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# Transactional tests end with a flush (TRUNCATE) run as the application role.
DATABASE_APP_MAY_TRUNCATE = True
MEDIA_ROOT = str(BASE_DIR / ".test-media")  # noqa: F405

# Shop connectors may talk to a local (fake) shop over plain http.
CONNECTOR_ALLOW_HTTP = env.bool("CONNECTOR_ALLOW_HTTP", default=True)
CONNECTOR_ALLOW_PRIVATE = env.bool("CONNECTOR_ALLOW_PRIVATE", default=True)
