import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create a user (or reuse an existing one) and print its API token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--superuser", action="store_true", help="staff and superuser (Django admin)")
        parser.add_argument("--password-env", metavar="VAR",
                            help="set the password from this environment variable (never from argv)")

    @transaction.atomic
    def handle(self, *args: Any, username: str, superuser: bool, password_env: str | None, **options: Any) -> None:
        user, created = get_user_model().objects.get_or_create(username=username)
        if superuser:
            user.is_staff = user.is_superuser = True
        if password_env:
            password = os.environ.get(password_env)
            if not password:
                raise SystemExit(f"{password_env} is empty")
            user.set_password(password)
        elif created:
            user.set_unusable_password()
        user.save()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
