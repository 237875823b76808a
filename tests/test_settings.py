"""Settings: production refuses to start without its required configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _check(env: dict) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS", "CELERY_BROKER_URL"}
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "pricing_saas.settings.production", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_names_every_missing_setting():
    result = _check({})
    assert result.returncode != 0
    for name in ("SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS", "CELERY_BROKER_URL"):
        assert name in result.stderr


def test_production_refuses_a_weak_secret_key():
    result = _check(
        {
            "SECRET_KEY": "short",
            "DATABASE_URL": "postgres://pricing_app@127.0.0.1:5432/pricing_saas",
            "ALLOWED_HOSTS": "shop.example.com",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        }
    )
    assert result.returncode != 0 and "SECRET_KEY is too short" in result.stderr


def test_production_starts_with_complete_configuration():
    result = _check(
        {
            "SECRET_KEY": "k" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz",
            "DATABASE_URL": "postgres://pricing_app@127.0.0.1:5432/pricing_saas",
            "ALLOWED_HOSTS": "shop.example.com",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        }
    )
    assert result.returncode == 0, result.stderr
