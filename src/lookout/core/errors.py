"""Domain errors: what services raise. The API turns each into one HTTP status and one JSON body
(lookout.api.errors); a shell, a task or `lookout apply` catches them as they are."""

from collections.abc import Mapping, Sequence


class DomainError(Exception):
    """Base of every error a service raises on purpose; `code` is stable, `detail` is for people."""

    code = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ValidationFailed(DomainError):
    """Input that breaks a rule; nothing was changed. `errors` maps each field to its messages."""

    code = "invalid"

    def __init__(self, errors: Mapping[str, str | Sequence[str]], detail: str = "") -> None:
        self.errors: dict[str, list[str]] = {name: [messages] if isinstance(messages, str) else list(messages)
                                             for name, messages in errors.items()}
        super().__init__(detail or f"Invalid input: {', '.join(self.errors) or 'see the errors'}.")


class Refused(DomainError):
    """A request that cannot apply to this object (e.g. check-now of a push monitor); nothing was changed."""

    code = "refused"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    """The request clashes with the current state (e.g. a name that must be unique); nothing was changed."""

    code = "conflict"


class BrokerUnavailable(DomainError):
    """The broker did not take a message; nothing was queued."""

    code = "broker_unavailable"
