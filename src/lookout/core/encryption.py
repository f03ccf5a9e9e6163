"""Encryption at rest for monitor secrets (secret header values, basic-auth passwords).

Keys come from LOOKOUT_ENCRYPTION_KEY: comma-separated, the first encrypts, all decrypt (rotation). Any
string works as a key (it is hashed to a Fernet key). Without it, a key is derived from SECRET_KEY, so
rotating SECRET_KEY then needs the old one listed in LOOKOUT_ENCRYPTION_KEY.
"""

import base64
import hashlib
import json
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretUnreadable(Exception):
    """A stored secret was encrypted with a key that is no longer configured."""


def _fernet_key(material: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(b"lookout-encryption:" + material.encode()).digest())


@cache
def _fernet() -> MultiFernet:
    materials = settings.LOOKOUT_ENCRYPTION_KEYS or [settings.SECRET_KEY]
    return MultiFernet([Fernet(_fernet_key(material)) for material in materials])


def secret_encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode() if plaintext else ""


def secret_decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("a monitor secret cannot be decrypted with LOOKOUT_ENCRYPTION_KEY") from exc


def secret_headers_encrypt(headers: dict[str, str]) -> str:
    return secret_encrypt(json.dumps(headers)) if headers else ""


def secret_headers_decrypt(token: str) -> dict[str, str]:
    return json.loads(secret_decrypt(token)) if token else {}
