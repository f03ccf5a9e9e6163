"""API tokens: issued, exchanged for a password, marked used and revoked. Every rule of a token is checked here,
so the API, `lookout manage createapiuser` and `lookout dev` issue the same tokens."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from lookout.accounts.keys import KEY_MIN_LENGTH, key_digest, key_display_prefix, key_generate
from lookout.accounts.models import ApiToken, TokenScope
from lookout.core.errors import Conflict, ValidationFailed

# last_used_at is written at most this often per token: a client polling every second costs one UPDATE a minute,
# not one per request, and "last used" is still accurate to the minute.
LAST_USED_RESOLUTION = timedelta(minutes=1)
PASSWORD_TOKEN_NAME = "password exchange"


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    key: str  # the only time the key exists outside its owner's hands: show it once, never store it


def api_token_create(*, owner: User, name: str, scope: str = TokenScope.WRITE, expires_at: datetime | None = None,
                     key: str | None = None, now: datetime | None = None) -> IssuedToken:
    """A new token for `owner` with a fresh key (or `key`, brought from elsewhere). ValidationFailed or Conflict
    change nothing."""
    now = now or timezone.now()
    name = name.strip()
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "A name is required."
    elif len(name) > ApiToken.NAME_MAX_LENGTH:
        errors["name"] = f"At most {ApiToken.NAME_MAX_LENGTH} characters."
    if scope not in TokenScope.values:
        errors["scope"] = f"One of: {', '.join(TokenScope.values)}."
    if expires_at is not None and expires_at <= now:
        errors["expires_at"] = "Must be in the future."
    if key is not None and (len(key) < KEY_MIN_LENGTH or not key.isascii() or not key.isprintable() or " " in key):
        errors["key"] = f"At least {KEY_MIN_LENGTH} printable ASCII characters, no spaces."
    if errors:
        raise ValidationFailed(errors)
    key = key or key_generate()
    try:
        # A savepoint: a clash (only possible with a key brought from elsewhere) leaves an outer transaction usable.
        with transaction.atomic():
            token = ApiToken.objects.create(owner=owner, name=name, scope=scope, expires_at=expires_at,
                                            created_at=now, prefix=key_display_prefix(key), digest=key_digest(key))
    except IntegrityError as exc:
        raise Conflict("A token with this key exists already.") from exc
    return IssuedToken(token=token, key=key)


def api_token_exchange(*, username: str, password: str) -> IssuedToken:
    """A new write token for the user with this password (each exchange issues one: revoke those no longer used)."""
    user = authenticate(username=username, password=password)  # inactive users are refused by the backend
    if not isinstance(user, User):
        raise ValidationFailed({"non_field_errors": "Unable to log in with provided credentials."})
    return api_token_create(owner=user, name=PASSWORD_TOKEN_NAME)


def api_token_used(*, token: ApiToken, now: datetime | None = None) -> None:
    """Record that `token` authenticated a request: a write only when last_used_at is older than the resolution.

    The condition is in the UPDATE too, so replicas serving the same token at once write it once.
    """
    now = now or timezone.now()
    stale = now - LAST_USED_RESOLUTION
    if token.last_used_at is not None and token.last_used_at > stale:
        return
    ApiToken.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale), pk=token.pk).update(
        last_used_at=now)
    token.last_used_at = now


def api_token_revoke(*, token: ApiToken) -> None:
    """The token stops working at once: its next request is a 401."""
    token.delete()
