"""The OpenAPI schema tells the truth about every operation: each status it can answer is documented, errors with
the one error format (lookout.api.errors), and response components list every field they always carry.

The statuses are derived from what the operation is (its path, body, query parameters, authentication,
permissions, throttles, pagination) and from the domain errors its handler's services raise, which the handler
declares with `raises(...)`; each domain error's status comes from lookout.api.errors, the one mapping.
"""

from collections.abc import Callable
from typing import Any, TypeVar

from drf_spectacular import openapi
from drf_spectacular.plumbing import ResolvedComponent, is_patched_serializer
from rest_framework.permissions import SAFE_METHODS, AllowAny, IsAuthenticated

from lookout.api.errors import STATUS_BY_ERROR
from lookout.core.errors import BrokerUnavailable, DomainError

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The error body of every API response. Invalid input adds one key per field, each a list of "
                   "messages; errors not tied to one field are under `non_field_errors`.",
    "properties": {
        "detail": {"type": "string", "description": "What went wrong, for people."},
        "code": {"type": "string", "description": "Stable machine-readable code: invalid, not_found, conflict, "
                                                  "refused, broker_unavailable, database_unavailable, "
                                                  "not_authenticated, permission_denied, throttled, parse_error, "
                                                  "unsupported_media_type, too_large, ..."},
    },
    "required": ["detail", "code"],
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}
_ERROR = ResolvedComponent(name="Error", type=ResolvedComponent.SCHEMA, object="Error", schema=ERROR_SCHEMA)
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.",
                                "schema": {"type": "integer"}}}
_DESCRIPTIONS = {
    400: "Invalid input, or a request that does not apply to this object; nothing was changed.",
    401: "No token, or an unknown, revoked or expired one.",
    403: "Not allowed (staff only, a read-scope token's write, or a session request without its CSRF token).",
    404: "No such object (or not yours), or a page past the last.",
    409: "Clashes with an existing object (a name that must be unique); nothing was changed.",
    413: "Request body too large.",
    415: "The request body is not JSON (Content-Type: application/json).",
    429: "Too many requests; retry after the Retry-After header's seconds.",
    503: "The database is unavailable; retry after the Retry-After header's seconds.",
}
_BROKER_DOWN = " Or the broker did not take the message: nothing was queued."

Handler = TypeVar("Handler", bound=Callable[..., Any])


def raises(*errors: type[DomainError]) -> Callable[[Handler], Handler]:
    """Declare the domain errors a view handler's services can raise, beyond invalid input (always documented
    where there is input): the schema documents each one's status."""
    def declare(handler: Handler) -> Handler:
        # Read back by AutoSchema._domain_errors.
        handler.domain_errors = errors  # type: ignore[attr-defined]
        return handler

    return declare


class AutoSchema(openapi.AutoSchema):
    def get_operation(self, path: str, path_regex: str, path_prefix: str, method: str,
                      registry: Any) -> dict[str, Any] | None:
        operation: dict[str, Any] | None = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        registry.register_on_missing(_ERROR)
        errors = self._domain_errors()
        responses = operation["responses"]
        for status in sorted(self._error_statuses(operation, errors)):
            description = _DESCRIPTIONS[status] + (_BROKER_DOWN if status == 503 and BrokerUnavailable in errors
                                                   else "")
            response: dict[str, Any] = {"description": description,
                                        "content": {"application/json": {"schema": _ERROR.ref}}}
            if status in (429, 503):
                response["headers"] = _RETRY_AFTER
            responses.setdefault(str(status), response)
        return operation

    def _domain_errors(self) -> tuple[type[DomainError], ...]:
        name = getattr(self.view, "action", None) or self.method.lower()
        errors: tuple[type[DomainError], ...] = getattr(getattr(self.view, name, None), "domain_errors", ())
        return errors

    def _error_statuses(self, operation: dict[str, Any], errors: tuple[type[DomainError], ...]) -> set[int]:
        view = self.view
        statuses = {STATUS_BY_ERROR[error] for error in errors}
        body = "requestBody" in operation
        if body:
            statuses |= {400, 413, 415}
        if any(parameter["in"] == "query" for parameter in operation.get("parameters", [])):
            statuses.add(400)
        authenticators = view.get_authenticators()
        if authenticators:  # a wrong token is a 401 even where anonymous requests are allowed
            statuses.add(401)
        # IsAuthenticated never refuses an authenticated user (an anonymous one gets the 401); anything
        # stricter can. An unsafe request is refused to a read-scope token, and to a session without its CSRF
        # token.
        if (any(type(permission) not in (AllowAny, IsAuthenticated) for permission in view.get_permissions())
                or (self.method not in SAFE_METHODS and authenticators)):
            statuses.add(403)
        if "{" in self.path or (self._is_list_view() and getattr(view, "pagination_class", None)):
            statuses.add(404)
        if view.get_throttles():
            statuses.add(429)
        statuses.add(503)  # every operation reads the database (DatabaseUnavailableMiddleware)
        return statuses

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_basic_serializer(serializer, direction)  # type: ignore[no-untyped-call]
        if direction == "response" and schema.get("properties"):
            # A representation carries every field, null or not: none is optional to a client.
            schema["required"] = sorted(schema["properties"])
        if is_patched_serializer(serializer, direction):
            # A field left out of a PATCH keeps its value; it does not take the default of a creation. (Generated
            # clients send a documented default whenever the field is not set: every PATCH would reset it.)
            for field in schema.get("properties", {}).values():
                field.pop("default", None)
        return schema
