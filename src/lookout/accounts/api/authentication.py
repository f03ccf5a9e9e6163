"""`Authorization: Token <key>` (or `Bearer <key>`) against the hashed API tokens, and their scope.

The scope is enforced here rather than in a permission class: views choose their permission classes (staff-only
views replace the default list), while every API view authenticates through this class, so a read token can
never write through a view that forgot a permission.
"""

from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request

from lookout.accounts import selectors, services
from lookout.accounts.models import ApiToken, TokenScope

KEYWORDS = (b"token", b"bearer")


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        words = get_authorization_header(request).split()
        if not words or words[0].lower() not in KEYWORDS:
            return None  # not ours: the next class (the session) may authenticate, or the request is anonymous
        if len(words) != 2:
            raise AuthenticationFailed("Invalid token header: `Token <key>`, with no spaces in the key.")
        try:
            key = words[1].decode()
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid token.") from None
        token = selectors.api_token_by_key(key=key)
        now = timezone.now()
        if token is None:
            raise AuthenticationFailed("Invalid token.")
        if token.is_expired(now=now):
            raise AuthenticationFailed("Token expired.", code="token_expired")
        if not token.owner.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        services.api_token_used(token=token, now=now)
        if token.scope != TokenScope.WRITE and request.method not in SAFE_METHODS:
            raise PermissionDenied("This token's scope is read: it cannot change anything.",
                                   code="insufficient_scope")
        return token.owner, token

    def authenticate_header(self, request: Request) -> str:
        # A challenge makes DRF answer an anonymous request 401 rather than 403.
        return "Token"


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes ApiTokenAuthentication (registered by being defined)."""

    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Token <key>` (or `Bearer <key>`): a key from POST /api/v1/tokens/, "
                               "POST /api/v1/auth/token/ or `lookout manage createapiuser`. A read-scope key may "
                               "only GET, HEAD and OPTIONS."}
