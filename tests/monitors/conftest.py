import pytest


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # alice and bob are created for nearly every test here: the production hasher's ~0.3 s per user
    # would dominate the run. Autouse, so it is in place before those fixtures create the users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
