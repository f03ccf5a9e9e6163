from django.contrib import admin
from django.http import HttpRequest

from lookout.accounts.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens can be looked at and revoked (deleted) here, not made: a key is shown once, to the user who creates
    it (the API or `lookout manage createapiuser`), and the admin would have nowhere safe to show it."""

    list_display = ["id", "name", "owner", "prefix", "scope", "created_at", "expires_at", "last_used_at"]
    list_filter = ["scope"]
    list_select_related = ["owner"]
    search_fields = ["name", "prefix", "owner__username"]
    exclude = ["digest"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False
