"""Reading the API's one error format (lookout.api.errors): `detail`, `code`, and one key per invalid field."""

ENVELOPE = {"detail", "code"}


def field_errors(response) -> dict:
    """The field -> messages part of an error body."""
    body = response.json()
    assert ENVELOPE <= body.keys(), body  # every error body carries both
    return {name: messages for name, messages in body.items() if name not in ENVELOPE}
