"""The one error format of every API response, and the one place domain errors become HTTP.

Every error body is a JSON object with
- `detail`: what went wrong, for people;
- `code`: a stable machine-readable code (`invalid`, `not_found`, `conflict`, `refused`, `broker_unavailable`,
  `not_authenticated`, `permission_denied`, `throttled`, `parse_error`, ...);
- for invalid input, one key per field, each a list of messages (`{"cron": ["..."]}`), as DRF has always
  answered; errors not tied to one field are under `non_field_errors`. A nested field's messages (an item of a
  list, a key of an object) are in its top field's list, each naming where: `{"headers": ["X-Id: Not a valid
  string."], "expected_status": ["[2]: A valid integer is required."]}`.
"""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from lookout.core import errors

STATUS_BY_ERROR: dict[type[errors.DomainError], int] = {
    errors.ValidationFailed: status.HTTP_400_BAD_REQUEST,
    errors.Refused: status.HTTP_400_BAD_REQUEST,
    errors.NotFound: status.HTTP_404_NOT_FOUND,
    errors.Conflict: status.HTTP_409_CONFLICT,
    errors.BrokerUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}
_RESERVED = {"detail", "code"}


def error_body(*, detail: str, code: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name, messages in (fields or {}).items():
        # A field named like a key of the envelope reports under non_field_errors instead.
        body.setdefault("non_field_errors" if name in _RESERVED else name, messages)
    return {**body, "detail": detail, "code": code}


def _domain_response(exc: errors.DomainError) -> Response:
    fields = exc.errors if isinstance(exc, errors.ValidationFailed) else None
    return Response(error_body(detail=exc.detail, code=exc.code, fields=fields),
                    status=STATUS_BY_ERROR.get(type(exc), status.HTTP_400_BAD_REQUEST))


def _messages(errors: Any, where: str = "") -> list[str]:
    """DRF's errors of one field, which nest like the field's value (by list index, object key or nested field),
    as a flat list of messages: a client reads every field's errors the same way."""
    if isinstance(errors, dict):
        return [message for key, nested in errors.items()
                for message in _messages(nested, f"{where}[{key}]" if isinstance(key, int) else
                                         f"{where}.{key}" if where else str(key))]
    if isinstance(errors, list):
        if all(not isinstance(error, dict | list) for error in errors):
            return [f"{where}: {error}" if where else str(error) for error in errors]
        # A list of nested objects' errors (a list serializer): one entry per item, empty for a valid one.
        return [message for index, nested in enumerate(errors) for message in _messages(nested, f"{where}[{index}]")]
    return [f"{where}: {errors}" if where else str(errors)]


def _field_summary(fields: dict[str, Any]) -> str:
    return f"Invalid input: {', '.join(fields)}." if fields else "Invalid input."


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, errors.DomainError):
        return _domain_response(exc)
    response = drf_exception_handler(exc, context)
    if response is None:  # not an API error: Django's 500 handling (and its log) applies
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        nested = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        fields = {name: _messages(errors) for name, errors in nested.items()}
        response.data = error_body(detail=_field_summary(fields), code="invalid", fields=fields)
        return response
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        response.data = error_body(detail=str(exc.detail), code=codes if isinstance(codes, str) else "error")
    elif isinstance(exc, Http404):
        response.data = error_body(detail=str(exc) or "Not found.", code="not_found")
    elif isinstance(exc, DjangoPermissionDenied):
        response.data = error_body(detail=str(exc) or "You do not have permission to perform this action.",
                                   code="permission_denied")
    return response

