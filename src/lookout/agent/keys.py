"""(placeholder until the agent package lands)"""
import base64
import hashlib
import hmac
import json

from cryptography.fernet import Fernet


def region_key_derive(material: str, region: str) -> str:
    digest = hmac.new(material.encode(), f"lookout-region-key:{region}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()


def secrets_seal(key: str, *, headers: dict[str, str], basic_auth: tuple[str, str] | None) -> str:
    if not headers and basic_auth is None:
        return ""
    return Fernet(key.encode()).encrypt(json.dumps({"headers": headers, "basic_auth": basic_auth}).encode()).decode()
