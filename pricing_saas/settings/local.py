"""Developer and quick-start settings: debug on, embedded Postgres unless DATABASE_URL is set."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)
# WhiteNoise serves static files straight from their folders (no collectstatic), also with DEBUG
# off: how `make demo` serves the portal.
WHITENOISE_USE_FINDERS = True

# Webhooks to a receiver on this machine (a developer's own test endpoint).
ALERT_WEBHOOK_ALLOW_HTTP = env.bool("ALERT_WEBHOOK_ALLOW_HTTP", default=True)
ALERT_WEBHOOK_ALLOW_PRIVATE = env.bool("ALERT_WEBHOOK_ALLOW_PRIVATE", default=True)

# Shop connectors may talk to a local (fake) shop over plain http.
CONNECTOR_ALLOW_HTTP = env.bool("CONNECTOR_ALLOW_HTTP", default=True)
CONNECTOR_ALLOW_PRIVATE = env.bool("CONNECTOR_ALLOW_PRIVATE", default=True)
