"""OpenAPI schema hooks: every operation documents the error responses it can give, in the one error format
(lookout.api.errors)."""

from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The error body of every API response. Invalid input adds one key per field, each a list of "
                   "messages; errors not tied to one field are under `non_field_errors`.",
    "properties": {
        "detail": {"type": "string", "description": "What went wrong, for people."},
        "code": {"type": "string", "description": "Stable machine-readable code: invalid, not_found, conflict, "
                                                  "refused, broker_unavailable, not_authenticated, "
                                                  "permission_denied, throttled, parse_error, ..."},
    },
    "required": ["detail", "code"],
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}
_DESCRIPTIONS = {
    "400": "Invalid input or a request that does not apply; nothing was changed.",
    "401": "No token, or an unknown, revoked or expired one.",
    "403": "Not allowed (a read-scope token's write among others).",
    "404": "No such object (or not yours).",
    "429": "Too many requests; retry after the Retry-After header's seconds.",
    "503": "A service Lookout needs (the broker) is unavailable; nothing was queued.",
}


def _statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    statuses = []
    if method in ("post", "put", "patch") or any(p.get("in") == "query" for p in operation.get("parameters", [])):
        statuses.append("400")
    if operation.get("security") != [{}]:  # [{}]: anonymous access (push, token exchange)
        statuses += ["401", "403"]
    if "{" in path:
        statuses.append("404")
    statuses.append("429")
    if path.endswith("/check/"):
        statuses.append("503")
    return statuses


def error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add the error responses and the Error component."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in _statuses(path, method, operation):
                responses.setdefault(code, {"description": _DESCRIPTIONS[code], "content": reference})
    return result
