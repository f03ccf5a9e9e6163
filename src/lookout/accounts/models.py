from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class TokenScope(models.TextChoices):
    READ = "read"  # safe methods only (GET, HEAD, OPTIONS): dashboards, exporters, status pages
    WRITE = "write"  # everything its owner can do


class ApiToken(models.Model):
    """A credential for the API. Only the key's SHA-256 digest is stored: the key is shown once, at creation.

    Revoking a token deletes its row.
    """

    NAME_MAX_LENGTH = 100

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    prefix = models.CharField(max_length=16, help_text="The key's first characters: not secret, for telling "
                                                       "tokens apart.")
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the key, hex.")
    scope = models.CharField(max_length=5, choices=TokenScope.choices, default=TokenScope.WRITE)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Null: never expires.")
    last_used_at = models.DateTimeField(null=True, blank=True,
                                        help_text="Updated at most once a minute (lookout.accounts.services).")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.scope})"

    def is_expired(self, *, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now
