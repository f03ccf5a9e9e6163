import os
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from lookout.accounts import selectors, services
from lookout.accounts.models import TokenScope
from lookout.core.errors import DomainError, ValidationFailed


class Command(BaseCommand):
    help = ("Create a user (or reuse an existing one), issue it a new API token and print the token's key "
            "(the only time it is shown).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--superuser", action="store_true", help="staff and superuser (Django admin)")
        parser.add_argument("--password-env", metavar="VAR",
                            help="set the password from this environment variable (never from argv)")
        parser.add_argument("--name", default="createapiuser", help="the token's name (default: %(default)s)")
        parser.add_argument("--scope", choices=TokenScope.values, default=TokenScope.WRITE,
                            help="read: GET, HEAD and OPTIONS only; write (default): everything the user can do")
        parser.add_argument("--expires-days", type=int, metavar="DAYS",
                            help="the token expires this many days from now (default: never)")
        parser.add_argument("--key-env", metavar="VAR",
                            help="use the key in this environment variable instead of a new one (e.g. one kept in "
                                 "a secret); if the user has a token with this key already, it is kept as it is")

    @transaction.atomic
    def handle(self, *args: Any, username: str, superuser: bool, password_env: str | None, name: str, scope: str,
               expires_days: int | None, key_env: str | None, **options: Any) -> None:
        if expires_days is not None and expires_days < 1:
            raise CommandError("--expires-days must be 1 or more")
        key = _environment_value(key_env) if key_env else None
        user, created = get_user_model().objects.get_or_create(username=username)
        if superuser:
            user.is_staff = user.is_superuser = True
        if password_env:
            user.set_password(_environment_value(password_env))
        elif created:
            user.set_unusable_password()
        user.save()
        existing = selectors.api_token_by_key(key=key) if key else None
        if existing is not None and existing.owner_id == user.pk:
            self.stdout.write(key or "")
            return
        expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
        try:
            issued = services.api_token_create(owner=user, name=name, scope=scope, expires_at=expires_at, key=key)
        except ValidationFailed as exc:
            raise CommandError("; ".join(f"{field}: {' '.join(messages)}"
                                         for field, messages in exc.errors.items())) from exc
        except DomainError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(issued.key)


def _environment_value(variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise CommandError(f"{variable} is empty")
    return value
