"""Whose rows a request reads and writes: its authenticated user's."""

from django.contrib.auth.models import User
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request


def request_owner(request: Request) -> User:
    """The request's user, for the views behind IsAuthenticated (the default permission): never anonymous."""
    user = request.user
    if not user.is_authenticated:  # only a view whose permissions let anonymous requests in gets here
        raise NotAuthenticated()
    return user
