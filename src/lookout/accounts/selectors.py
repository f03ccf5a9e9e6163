"""Read queries for API tokens."""

from django.contrib.auth.models import User
from django.db.models import QuerySet

from lookout.accounts.keys import key_digest
from lookout.accounts.models import ApiToken


def api_token_list(*, owner: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(owner=owner).order_by("-id")


def api_token_by_key(*, key: str) -> ApiToken | None:
    """The token with this key, and its owner (every authenticated request reads both): one indexed query."""
    return ApiToken.objects.select_related("owner").filter(digest=key_digest(key)).first()
