"""Credentials encrypted at rest: Fernet (AES-128-CBC + HMAC-SHA256, from the `cryptography`
package) under a list of keys, `MultiFernet`.

Keys come from the environment, `FIELD_ENCRYPTION_KEYS`: comma-separated Fernet keys
(`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`).
The first key encrypts; every key decrypts. Rotation: put a new key first, keep the old ones
after it, restart, run `manage.py rotate_credentials` (re-encrypts every stored secret under
the first key), then drop the old keys. Without the variable, development and test settings
derive one key from SECRET_KEY (`FIELD_ENCRYPTION_DERIVE_FROM_SECRET`); production refuses.

Plain text never leaves this module except to the code that uses it: nothing here logs.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Encrypted fields of the apps above this one (which it may not import), re-encrypted by
# `manage.py rotate_credentials` too: each a callable that rotates the current tenant's rows
# and returns how many it rotated (registered in the app's ready()).
ROTATIONS: list = []


class DecryptionError(Exception):
    """A stored secret cannot be read with any configured key (a key was dropped too soon)."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS holds a value that is not a Fernet key (32 url-safe "
            "base64-encoded bytes)"
        ) from exc


def configured_keys() -> tuple[str, ...]:
    keys = tuple(k.strip() for k in getattr(settings, "FIELD_ENCRYPTION_KEYS", []) if k.strip())
    if keys:
        return keys
    if getattr(settings, "FIELD_ENCRYPTION_DERIVE_FROM_SECRET", False):
        digest = hashlib.sha256(("field-encryption:" + settings.SECRET_KEY).encode()).digest()
        return (base64.urlsafe_b64encode(digest).decode(),)
    raise ImproperlyConfigured(
        "FIELD_ENCRYPTION_KEYS is not set: shop credentials cannot be stored. Generate a key "
        "with cryptography.fernet.Fernet.generate_key() and set it."
    )


def encrypt(secrets: dict[str, str]) -> str:
    """A dict of secrets as one Fernet token (text), under the first key."""
    return _fernet(configured_keys()).encrypt(json.dumps(secrets).encode()).decode()


def decrypt(token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        return json.loads(_fernet(configured_keys()).decrypt(token.encode()))
    except InvalidToken:
        raise DecryptionError(
            "the stored credentials cannot be decrypted with the configured keys"
        ) from None


def rotate(token: str) -> str:
    """The same secrets re-encrypted under the first key (MultiFernet.rotate)."""
    if not token:
        return token
    try:
        return _fernet(configured_keys()).rotate(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "the stored credentials cannot be decrypted with the configured keys"
        ) from None
