"""API token keys: generated, digested and shown by their prefix. No Django here (`lookout dev` makes its key
before any Django process runs).

A key is 192 random bits, so a plain SHA-256 of it is as strong as a slow password hash and can be looked up by
an index in one query: a password hasher's cost protects guessable secrets, and a key is never guessable.
"""

import hashlib
import secrets

KEY_PREFIX = "lk_"
# Shown in lists and the admin to tell tokens apart: 7 random characters of a new key (28 of its 192 bits).
DISPLAY_PREFIX_LENGTH = 10
# Keys brought in from elsewhere (`createapiuser --key-env`, DRF's 40 hex digits) must be at least this long.
KEY_MIN_LENGTH = 32


def key_generate() -> str:
    # Letters, digits and `_` only: a double click selects the whole key, and no shell or URL quoting is needed.
    return KEY_PREFIX + secrets.token_hex(24)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]
