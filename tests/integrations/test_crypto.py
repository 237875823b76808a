from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from pricing_saas.integrations import crypto


def test_round_trip_and_no_plain_text_in_the_token(settings):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    token = crypto.encrypt({"access_token": "shpat_plain"})
    assert "shpat_plain" not in token
    assert crypto.decrypt(token) == {"access_token": "shpat_plain"}


def test_rotation_new_key_first_old_still_decrypts_then_rotate(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    token = crypto.encrypt({"access_token": "x"})
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    assert crypto.decrypt(token) == {"access_token": "x"}
    rotated = crypto.rotate(token)
    settings.FIELD_ENCRYPTION_KEYS = [new]  # the old key dropped: only the rotated one reads
    assert crypto.decrypt(rotated) == {"access_token": "x"}
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token)


def test_production_refuses_without_keys(settings):
    settings.FIELD_ENCRYPTION_KEYS = []
    settings.FIELD_ENCRYPTION_DERIVE_FROM_SECRET = False
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS"):
        crypto.encrypt({"a": "b"})


def test_a_bad_key_is_named(settings):
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-key"]
    with pytest.raises(ImproperlyConfigured, match="not a Fernet key"):
        crypto.encrypt({"a": "b"})
