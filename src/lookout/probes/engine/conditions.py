"""A small condition language for probe results, parsed by hand: no eval, no regular expressions from users.

    condition   = placeholder [path] operator value
    placeholder = "[STATUS]" | "[RESPONSE_TIME]" | "[BODY]" | "[HEADER]" | "[CERTIFICATE_EXPIRATION]"
                  (case-insensitive)
    path        = [BODY]:   { "." key | "[" integer "]" | "[" quoted "]" }   a JSON path, e.g. .data.items[0].id
                  [HEADER]: "." header-name                                  required, case-insensitive
    operator    = "==" | "!=" | "<" | "<=" | ">" | ">=" | "contains" | "!contains"
    value       = quoted | bare
    quoted      = '"' { any character, or "\\" followed by the character to take literally } '"'
    bare        = characters up to the end, without white space or quotes: 200, 300ms, 48h, UP

Whitespace around the operator is optional for the symbols and required for the words. Types:

- [STATUS] (the final HTTP status), [RESPONSE_TIME] (milliseconds) and [CERTIFICATE_EXPIRATION] (seconds
  until the certificate's notAfter) are numbers: comparison operators only. [RESPONSE_TIME] takes a number
  of milliseconds or a duration; [CERTIFICATE_EXPIRATION] takes a duration: digits and a unit, ms s m h d,
  possibly several ("1h30m"). A missing status or certificate makes the condition fail.
- [BODY] (the body as text, up to the body cap), [BODY].path (the JSON value there) and [HEADER].name are
  text. contains / !contains test a substring (for a JSON array: an element equal to the value).
  == / != compare text, except that a bare number equals a JSON number numerically (1.0 == 1).
  < <= > >= need a number as value and hold only if the actual text or JSON value is a number.
  A body that is not JSON, a missing JSON path or a missing header makes the condition fail, whatever
  the operator: a condition can only pass on what was actually there.
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Condition", "ConditionContext", "ConditionError", "OPERATORS", "PLACEHOLDERS",
    "condition_evaluate", "condition_failure", "condition_parse", "conditions_reference", "conditions_validate",
]

PLACEHOLDERS = ("STATUS", "RESPONSE_TIME", "BODY", "HEADER", "CERTIFICATE_EXPIRATION")
OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "contains", "!contains")
MAX_CONDITION_CHARS = 500
MAX_CONDITIONS = 32
MAX_PATH_SEGMENTS = 32

_NUMERIC = ("STATUS", "RESPONSE_TIME", "CERTIFICATE_EXPIRATION")
_ORDERING = ("<", "<=", ">", ">=")
_OPERATORS_LONGEST_FIRST = ("!contains", "contains", "==", "!=", "<=", ">=", "<", ">")
_WORD_OPERATORS = ("contains", "!contains")
_NUMBER = re.compile(r"-?\d{1,15}(?:\.\d{1,9})?")
_INTEGER = re.compile(r"-?\d{1,15}")
_DURATION = re.compile(r"(?:\d{1,9}(?:\.\d{1,9})?(?:ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"(\d{1,9}(?:\.\d{1,9})?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_KEY_END = frozenset(".[]\"") | frozenset(" \t")


class ConditionError(ValueError):
    """A condition that does not parse; the message says what is wrong and where (for API 400s)."""

    def __init__(self, message: str, position: int | None = None) -> None:
        self.message = message
        self.position = position  # 0-based index into the text, if the problem has a place
        super().__init__(message if position is None else f"{message} (at column {position + 1})")


@dataclass(frozen=True)
class Condition:
    text: str  # as written, stripped
    placeholder: str  # one of PLACEHOLDERS
    path: tuple[str | int, ...]  # [BODY]: the JSON path; [HEADER]: (lower-case name,); others: ()
    operator: str  # one of OPERATORS
    # float for numeric placeholders and ordering operators (RESPONSE_TIME in ms, CERTIFICATE_EXPIRATION in
    # seconds), else the text of the value.
    value: str | float
    quoted: bool


@dataclass(frozen=True)
class ConditionContext:
    status: int | None = None
    response_time_ms: float = 0.0
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    certificate_expiration: float | None = None  # seconds left, negative once expired; None without TLS

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)  # case-insensitive mappings (requests') answer directly
        if value is None:
            value = next((item for key, item in self.headers.items() if key.lower() == name), None)
        return value

    @functools.cached_property
    def body_json(self) -> tuple[bool, Any]:
        try:
            return True, json.loads(self.body)
        except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested deeper than the C stack
            return False, None


def condition_parse(text: str) -> Condition:
    """Parse one condition; raises ConditionError (and nothing else) for any input."""
    if not isinstance(text, str):
        raise ConditionError("a condition must be a string")
    return _parse_cached(text)


def conditions_validate(texts: Sequence[str]) -> None:
    """Raise ConditionError naming the first condition (1-based) that does not parse."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ConditionError("conditions must be a list of strings")
    if len(texts) > MAX_CONDITIONS:
        raise ConditionError(f"at most {MAX_CONDITIONS} conditions")
    for number, text in enumerate(texts, start=1):
        try:
            condition_parse(text)
        except ConditionError as exc:
            raise ConditionError(f"condition {number}: {exc}") from None


def conditions_reference(texts: Sequence[str], placeholder: str) -> bool:
    """Whether any (valid) condition tests this placeholder."""
    for text in texts:
        try:
            if condition_parse(text).placeholder == placeholder:
                return True
        except ConditionError:
            continue
    return False


def condition_evaluate(condition: Condition | str, context: ConditionContext | Mapping[str, Any]) -> bool:
    return condition_failure(condition, context) is None


def condition_failure(condition: Condition | str, context: ConditionContext | Mapping[str, Any]) -> str | None:
    """None if the condition holds, else the condition and what was actually there, for the probe's error."""
    if isinstance(condition, str):
        condition = condition_parse(condition)
    if not isinstance(context, ConditionContext):
        context = ConditionContext(**context)
    found, actual, shown = _actual(condition, context)
    if found and _holds(condition, actual):
        return None
    return f"{condition.text} ({shown})"


# --- parsing -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Condition:
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.raw = text
        self.text = text.strip()
        self.offset = len(text) - len(text.lstrip())  # columns in errors count in the text as given
        self.pos = 0

    def fail(self, message: str, pos: int | None = None) -> ConditionError:
        return ConditionError(message, self.offset + (self.pos if pos is None else pos))

    def parse(self) -> Condition:
        if not self.text:
            raise ConditionError("empty condition; write one like [STATUS] == 200")
        if len(self.raw) > MAX_CONDITION_CHARS:
            raise ConditionError(f"a condition has at most {MAX_CONDITION_CHARS} characters")
        for index, char in enumerate(self.raw):
            if unicodedata.category(char) == "Cc" and char != "\t":
                raise ConditionError(f"unexpected control character {char!r}", index)
        placeholder = self.placeholder()
        path = self.path(placeholder)
        self.skip_spaces()
        operator = self.operator()
        self.skip_spaces()
        value_pos = self.pos
        value, quoted = self.value()
        typed = self.typed(placeholder, operator, value, quoted, value_pos)
        return Condition(self.text, placeholder, path, operator, typed, quoted)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_spaces(self) -> None:
        while self.peek() in (" ", "\t") and self.pos < len(self.text):
            self.pos += 1

    def placeholder(self) -> str:
        expected = ", ".join(f"[{name}]" for name in PLACEHOLDERS)
        if self.peek() != "[":
            raise self.fail(f"a condition starts with a placeholder: one of {expected}")
        end = self.text.find("]", self.pos)
        name = self.text[self.pos + 1:end].upper() if end > 0 else ""
        if end < 0 or name not in PLACEHOLDERS:
            shown = self.text[self.pos:end + 1 if 0 < end < self.pos + 40 else self.pos + 40]
            raise self.fail(f"unknown placeholder {shown!r}; expected one of {expected}")
        self.pos = end + 1
        return name

    def path(self, placeholder: str) -> tuple[str | int, ...]:
        if placeholder == "HEADER":
            if self.peek() != ".":
                raise self.fail("[HEADER] needs a header name, like [HEADER].content-type")
            self.pos += 1
            match = _HEADER_NAME.match(self.text, self.pos)
            if match is None:
                raise self.fail("expected a header name after [HEADER].")
            self.pos = match.end()
            return (match.group().lower(),)
        if placeholder != "BODY":
            if self.peek() in (".", "["):
                raise self.fail(f"[{placeholder}] takes no path")
            return ()
        segments: list[str | int] = []
        while self.peek() in (".", "["):
            if len(segments) >= MAX_PATH_SEGMENTS:
                raise self.fail(f"a JSON path has at most {MAX_PATH_SEGMENTS} parts")
            if self.peek() == ".":
                start = self.pos = self.pos + 1
                while self.peek() and self.peek() not in _KEY_END:
                    self.pos += 1
                if self.pos == start:
                    raise self.fail("expected a key after '.' in the JSON path")
                segments.append(self.text[start:self.pos])
            else:
                segments.append(self.index())
        return tuple(segments)

    def index(self) -> str | int:
        bracket = self.pos
        self.pos += 1
        key: str | int
        if self.peek() == '"':
            key = self.quoted()
        else:
            match = _INTEGER.match(self.text, self.pos)
            if match is None:
                raise self.fail('expected an index like [0] or a quoted key like ["name"]')
            self.pos = match.end()
            key = int(match.group())
        if self.peek() != "]":
            raise self.fail(f"expected ']' to close the '[' at column {self.offset + bracket + 1}")
        self.pos += 1
        return key

    def operator(self) -> str:
        for operator in _OPERATORS_LONGEST_FIRST:
            if self.text.startswith(operator, self.pos):
                after = self.text[self.pos + len(operator):self.pos + len(operator) + 1]
                if operator in _WORD_OPERATORS and after not in ("", " ", "\t", '"'):
                    continue
                self.pos += len(operator)
                return operator
        found = self.text[self.pos:].split(maxsplit=1)[0] if self.text[self.pos:].strip() else ""
        expected = ", ".join(OPERATORS)
        if not found:
            raise self.fail(f"missing operator; expected one of {expected}")
        raise self.fail(f"unknown operator {found[:20]!r}; expected one of {expected}")

    def value(self) -> tuple[str, bool]:
        if not self.peek():
            raise self.fail("missing value after the operator")
        if self.peek() == '"':
            value = self.quoted()
            self.skip_spaces()
            if self.peek():
                raise self.fail("unexpected text after the quoted value")
            return value, True
        value = self.text[self.pos:]
        bad = next((index for index, char in enumerate(value) if char in ' \t"'), None)
        if bad is not None:
            raise self.fail("a value with spaces or quotes must be in double quotes", self.pos + bad)
        self.pos = len(self.text)
        return value, False

    def quoted(self) -> str:
        start = self.pos
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                chars.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if char == '"':
                self.pos += 1
                return "".join(chars)
            chars.append(char)
            self.pos += 1
        raise self.fail("unterminated string: missing closing '\"'", start)

    def typed(self, placeholder: str, operator: str, value: str, quoted: bool, pos: int) -> str | float:
        if placeholder in _NUMERIC:
            if operator in _WORD_OPERATORS:
                raise self.fail(f"[{placeholder}] is a number: use ==, !=, <, <=, > or >=", pos)
            if placeholder == "STATUS":
                if not _INTEGER.fullmatch(value):
                    raise self.fail(f"[STATUS] compares with a whole number, like 200, not {value[:30]!r}", pos)
                return float(value)
            if placeholder == "RESPONSE_TIME":
                if _NUMBER.fullmatch(value):
                    return float(value)
                if _DURATION.fullmatch(value):
                    return _duration_seconds(value) * 1000
                raise self.fail(f"[RESPONSE_TIME] compares with milliseconds or a duration, like 300 or 1.5s, "
                                f"not {value[:30]!r}", pos)
            if _DURATION.fullmatch(value):
                return _duration_seconds(value)
            raise self.fail(f"[CERTIFICATE_EXPIRATION] compares with a duration, like 48h or 7d, not {value[:30]!r}",
                            pos)
        if operator in _ORDERING:
            if not _NUMBER.fullmatch(value):
                raise self.fail(f"{operator} compares numbers: the value must be a number, not {value[:30]!r}", pos)
            return float(value)
        return value


def _duration_seconds(text: str) -> float:
    return sum(float(amount) * _UNIT_SECONDS[unit] for amount, unit in _DURATION_PART.findall(text))


# --- evaluation ----------------------------------------------------------------------------------

_MISSING = object()


def _actual(condition: Condition, context: ConditionContext) -> tuple[bool, Any, str]:
    """(found, the actual value, how to show it in an error)."""
    placeholder = condition.placeholder
    if placeholder == "STATUS":
        if context.status is None:
            return False, None, "there was no status"
        return True, context.status, f"status was {context.status}"
    if placeholder == "RESPONSE_TIME":
        return True, context.response_time_ms, f"response time was {context.response_time_ms:.0f} ms"
    if placeholder == "CERTIFICATE_EXPIRATION":
        left = context.certificate_expiration
        if left is None:
            return False, None, "there was no certificate"
        return True, left, f"certificate {_expiry_text(left)}"
    if placeholder == "HEADER":
        name = str(condition.path[0])
        value = context.header(name)
        if value is None:
            return False, None, f"there was no {name} header"
        return True, value, f"header was {_shown(value)}"
    if not condition.path:
        return True, context.body, f"body was {_shown(context.body)}"
    parsed, data = context.body_json
    if not parsed:
        return False, None, "the body is not JSON"
    value = _walk(data, condition.path)
    if value is _MISSING:
        return False, None, "no such path in the JSON body"
    return True, value, f"value was {_shown(_text(value))}"


def _holds(condition: Condition, actual: Any) -> bool:
    operator, value = condition.operator, condition.value
    if operator in ("contains", "!contains"):
        assert isinstance(value, str)
        if isinstance(actual, list):
            present = any(_text(item) == value for item in actual)
        else:
            present = value in _text(actual)
        return present if operator == "contains" else not present
    if isinstance(value, float):  # numeric placeholder or ordering operator
        number = _as_number(actual)
        if number is None:
            return False
        return {"==": number == value, "!=": number != value, "<": number < value, "<=": number <= value,
                ">": number > value, ">=": number >= value}[operator]
    equal = _text(actual) == value
    if not condition.quoted and _NUMBER.fullmatch(value) and _is_number(actual):
        equal = actual == float(value)
    return equal if operator == "==" else not equal


def _walk(data: Any, path: tuple[str | int, ...]) -> Any:
    for key in path:
        if isinstance(data, list):
            if isinstance(key, str):
                if not _INTEGER.fullmatch(key):
                    return _MISSING
                key = int(key)
            if not -len(data) <= key < len(data):
                return _MISSING
            data = data[key]
        elif isinstance(data, dict) and isinstance(key, str) and key in data:
            data = data[key]
        else:
            return _MISSING
    return data


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _as_number(value: Any) -> float | None:
    if _is_number(value):
        return float(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value.strip())
    return None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return str(value)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _expiry_text(seconds: float) -> str:
    if seconds < 0:
        return f"expired {_duration_text(-seconds)} ago"
    return f"expires in {_duration_text(seconds)}"


def _duration_text(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds:.0f}s"
