"""A region's key, and the monitor secrets (headers, basic auth) sealed under it for the trip to the region.

Each region has a key of its own, derived from the home side's encryption material: an agent's key opens its
own region's runs only, and a leaked agent key exposes no other region and not the home's stored secrets.
"""

import base64
import hashlib
import hmac
import json

from cryptography.fernet import Fernet, InvalidToken

_DERIVATION_PREFIX = "lookout-region-key:"


class SecretsRefused(Exception):
    """The sealed secrets cannot be opened with this key (another region's key, or a different home)."""


def region_key_derive(material: str, region: str) -> str:
    """The Fernet key (urlsafe base64 of 32 bytes) of a region, from the home side's encryption material."""
    digest = hmac.new(material.encode(), (_DERIVATION_PREFIX + region).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()


def secrets_seal(key: str, headers: dict[str, str], basic_auth: tuple[str, str] | None) -> str:
    """A Fernet token of the secrets, or "" when there is nothing secret (no token to open)."""
    if not headers and basic_auth is None:
        return ""
    payload = {"headers": headers, "basic_auth": list(basic_auth) if basic_auth is not None else None}
    return _fernet(key).encrypt(json.dumps(payload).encode()).decode()


def secrets_open(key: str, sealed: str) -> tuple[dict[str, str], tuple[str, str] | None]:
    """The headers and basic auth sealed by secrets_seal; SecretsRefused for a token this key did not seal."""
    if not sealed:
        return {}, None
    try:
        payload = json.loads(_fernet(key).decrypt(sealed.encode()))
    except InvalidToken:
        raise SecretsRefused("the run's secrets do not open with this prober's key: sealed under another key "
                             "(LOOKOUT_REGION_KEY must be its region's, as `lookout manage regionkey NAME` "
                             "prints it at home), or not a sealed token") from None
    user_password = payload.get("basic_auth")
    basic_auth = (str(user_password[0]), str(user_password[1])) if user_password else None
    return {str(name): str(value) for name, value in (payload.get("headers") or {}).items()}, basic_auth


def _fernet(key: str) -> Fernet:
    try:
        return Fernet(key.encode())
    except ValueError as exc:  # not 32 bytes of urlsafe base64
        raise SecretsRefused(f"the region key is not a valid key ({exc}); `lookout manage regionkey NAME` "
                             "prints the region's key") from None
