"""Developer and quick-start settings: debug on, embedded Postgres unless DATABASE_URL is set."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)
