"""A region's key and the secrets sealed under it: only that region's key opens them."""

import base64

import pytest
from cryptography.fernet import Fernet

from lookout.agent.keys import SecretsRefused, region_key_derive, secrets_open, secrets_seal

MATERIAL = "home-encryption-material-" + "x" * 20


def test_it_derives_a_fernet_key_per_region_the_same_every_time():
    key = region_key_derive(MATERIAL, "eu-west")

    Fernet(key)  # a valid key
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert region_key_derive(MATERIAL, "eu-west") == key
    assert region_key_derive(MATERIAL, "us-east") != key
    assert region_key_derive(MATERIAL + "2", "eu-west") != key


def test_it_opens_what_it_sealed():
    key = region_key_derive(MATERIAL, "eu-west")

    sealed = secrets_seal(key, {"Authorization": "Bearer s3cret"}, ("alice", "pa55word"))

    assert secrets_open(key, sealed) == ({"Authorization": "Bearer s3cret"}, ("alice", "pa55word"))


def test_it_seals_nothing_when_nothing_is_secret():
    key = region_key_derive(MATERIAL, "eu-west")

    assert secrets_seal(key, {}, None) == ""
    assert secrets_open(key, "") == ({}, None)


def test_the_secrets_are_not_in_the_sealed_text():
    sealed = secrets_seal(region_key_derive(MATERIAL, "eu-west"), {"X-Token": "t0ken-value"}, ("bob", "hunter2"))

    for plain in ("t0ken-value", "hunter2", "X-Token", "bob"):
        assert plain not in sealed
        assert plain.encode() not in base64.urlsafe_b64decode(sealed + "==")


def test_another_region_s_key_is_refused_with_a_clear_error():
    sealed = secrets_seal(region_key_derive(MATERIAL, "eu-west"), {"X-Token": "t"}, None)

    with pytest.raises(SecretsRefused, match="sealed under another key.*LOOKOUT_REGION_KEY"):
        secrets_open(region_key_derive(MATERIAL, "us-east"), sealed)


def test_a_key_that_is_no_key_is_refused_with_a_clear_error():
    with pytest.raises(SecretsRefused, match="not a valid key"):
        secrets_open("not-a-key", "gAAAAA")
