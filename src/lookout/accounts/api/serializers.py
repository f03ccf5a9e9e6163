"""Requests and responses of the token API, separate: the key is only in the create response."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from lookout.accounts.models import ApiToken, TokenScope
from lookout.api.input import RejectUnknownFieldsMixin


class ApiTokenCreateSerializer(RejectUnknownFieldsMixin, serializers.Serializer[Any]):
    """A new token: its name, scope and expiry (anything else, the key included, is refused)."""

    name = serializers.CharField(max_length=ApiToken.NAME_MAX_LENGTH,
                                 help_text="What the token is for, e.g. `grafana` or `ci`.")
    scope = serializers.ChoiceField(choices=TokenScope.choices, default=TokenScope.WRITE,
                                    help_text="read: GET, HEAD and OPTIONS only; write: everything you can do.")
    expires_at = serializers.DateTimeField(required=False, allow_null=True,
                                           help_text="ISO 8601, in the future; absent or null: never expires.")


class ApiTokenSerializer(serializers.ModelSerializer[ApiToken]):
    """A token as listed: never its key, only the key's first characters (`prefix`)."""

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "scope", "created_at", "expires_at", "last_used_at"]
        read_only_fields = fields


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    """The token just created, with its key: the one response that carries it."""

    key = serializers.SerializerMethodField(help_text="The secret, shown in this response only: Lookout keeps "
                                                      "its SHA-256 digest, not the key.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_key(self, token: ApiToken) -> str:
        key: str = self.context["key"]
        return key


class PasswordExchangeSerializer(RejectUnknownFieldsMixin, serializers.Serializer[Any]):
    """A user's credentials, exchanged for a token."""

    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, write_only=True)


class PasswordExchangedSerializer(serializers.Serializer[Any]):
    """The key of the token the password was exchanged for."""

    token = serializers.CharField(help_text="A new write-scope key (named `password exchange`), shown once.")
