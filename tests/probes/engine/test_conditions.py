"""The condition language: what parses to what, what is refused with which message, what holds."""

from __future__ import annotations

import pytest
from requests.structures import CaseInsensitiveDict

from lookout.probes.engine.conditions import (
    ConditionContext,
    ConditionError,
    condition_evaluate,
    condition_failure,
    condition_parse,
    conditions_reference,
    conditions_validate,
)

PLACEHOLDERS_TEXT = "[STATUS], [RESPONSE_TIME], [BODY], [HEADER], [CERTIFICATE_EXPIRATION]"
OPERATORS_TEXT = "==, !=, <, <=, >, >=, contains, !contains"


@pytest.mark.parametrize(("text", "parsed"), [
    ("[STATUS] == 200", ("STATUS", (), "==", 200.0, False)),
    ("[STATUS]<400", ("STATUS", (), "<", 400.0, False)),
    ("  [STATUS] != 503  ", ("STATUS", (), "!=", 503.0, False)),
    ("[RESPONSE_TIME] < 300", ("RESPONSE_TIME", (), "<", 300.0, False)),
    ("[RESPONSE_TIME] <= 1.5s", ("RESPONSE_TIME", (), "<=", 1500.0, False)),
    ('[BODY] contains "ok"', ("BODY", (), "contains", "ok", True)),
    ("[body] !contains error", ("BODY", (), "!contains", "error", False)),
    ('[BODY].status == "UP"', ("BODY", ("status",), "==", "UP", True)),
    ("[BODY].data.items[0].name != x", ("BODY", ("data", "items", 0, "name"), "!=", "x", False)),
    ('[BODY]["a.b"][-1] >= 3', ("BODY", ("a.b", -1), ">=", 3.0, False)),
    ('[HEADER].Content-Type contains "json"', ("HEADER", ("content-type",), "contains", "json", True)),
    ("[CERTIFICATE_EXPIRATION] > 48h", ("CERTIFICATE_EXPIRATION", (), ">", 172800.0, False)),
    ("[CERTIFICATE_EXPIRATION] >= 1d12h", ("CERTIFICATE_EXPIRATION", (), ">=", 129600.0, False)),
    ('[BODY] contains "say \\"hi\\" \\\\ bye"', ("BODY", (), "contains", 'say "hi" \\ bye', True)),
    ('[BODY]contains"x"', ("BODY", (), "contains", "x", True)),
])
def test_valid_conditions_parse(text: str, parsed: tuple) -> None:
    condition = condition_parse(text)

    assert (condition.placeholder, condition.path, condition.operator, condition.value, condition.quoted) == parsed
    assert condition.text == text.strip()


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty condition; write one like [STATUS] == 200"),
    ("STATUS == 200", f"a condition starts with a placeholder: one of {PLACEHOLDERS_TEXT} (at column 1)"),
    ("[STATU] == 200", f"unknown placeholder '[STATU]'; expected one of {PLACEHOLDERS_TEXT} (at column 1)"),
    ("[STATUS] = 200", f"unknown operator '='; expected one of {OPERATORS_TEXT} (at column 10)"),
    ("[STATUS]", f"missing operator; expected one of {OPERATORS_TEXT} (at column 9)"),
    ("[STATUS] ==", "missing value after the operator (at column 12)"),
    ("[STATUS] contains 200", "[STATUS] is a number: use ==, !=, <, <=, > or >= (at column 19)"),
    ("[STATUS] == ok", "[STATUS] compares with a whole number, like 200, not 'ok' (at column 13)"),
    ("[RESPONSE_TIME] < fast",
     "[RESPONSE_TIME] compares with milliseconds or a duration, like 300 or 1.5s, not 'fast' (at column 19)"),
    ("[CERTIFICATE_EXPIRATION] > 48",
     "[CERTIFICATE_EXPIRATION] compares with a duration, like 48h or 7d, not '48' (at column 28)"),
    ('[BODY] contains "open', "unterminated string: missing closing '\"' (at column 17)"),
    ("[BODY] contains two words", "a value with spaces or quotes must be in double quotes (at column 20)"),
    ('[BODY] == "a" b', "unexpected text after the quoted value (at column 15)"),
    ("[HEADER] contains x", "[HEADER] needs a header name, like [HEADER].content-type (at column 9)"),
    ("[STATUS].code == 1", "[STATUS] takes no path (at column 9)"),
    ("[BODY].a[x] == 1", 'expected an index like [0] or a quoted key like ["name"] (at column 10)'),
    ("[BODY].a[0 == 1", "expected ']' to close the '[' at column 9 (at column 11)"),
    ("[BODY]. == 1", "expected a key after '.' in the JSON path (at column 8)"),
    ("[BODY] > abc", "> compares numbers: the value must be a number, not 'abc' (at column 10)"),
    ("[BODY] containsx", f"unknown operator 'containsx'; expected one of {OPERATORS_TEXT} (at column 8)"),
    ("[STATUS] == 200\n", "unexpected control character '\\n' (at column 16)"),
    ("[BODY] == " + "x" * 500, "a condition has at most 500 characters"),
])
def test_invalid_conditions_are_refused_with_a_clear_message_and_column(text: str, message: str) -> None:
    with pytest.raises(ConditionError) as refused:
        condition_parse(text)

    assert str(refused.value) == message


def test_validation_names_the_condition_that_does_not_parse() -> None:
    conditions_validate(["[STATUS] == 200", "[BODY] contains ok"])
    with pytest.raises(ConditionError, match=r"^condition 2: unknown operator '=~'"):
        conditions_validate(["[STATUS] == 200", "[BODY] =~ ok"])
    with pytest.raises(ConditionError, match="a list of strings"):
        conditions_validate("[STATUS] == 200")  # type: ignore[arg-type]
    with pytest.raises(ConditionError, match="at most 32 conditions"):
        conditions_validate(["[STATUS] == 200"] * 33)
    with pytest.raises(ConditionError, match="condition 1: a condition must be a string"):
        conditions_validate([200])  # type: ignore[list-item]


JSON_BODY = '{"status": "UP", "count": 3, "ratio": 0.5, "ok": true, "gone": null, "version": "12", ' \
            '"items": [{"name": "a"}, {"name": "b"}], "tags": ["x", "y"], "a.b": {"c": 1}}'


@pytest.mark.parametrize(("text", "context", "holds"), [
    ("[STATUS] == 200", {"status": 200}, True),
    ("[STATUS] == 200", {"status": 503}, False),
    ("[STATUS] < 400", {"status": 302}, True),
    ("[STATUS] >= 500", {"status": 503}, True),
    ("[STATUS] != 200", {"status": None}, False),  # no status: no condition on it holds
    ("[RESPONSE_TIME] < 300", {"response_time_ms": 120.0}, True),
    ("[RESPONSE_TIME] < 300", {"response_time_ms": 450.0}, False),
    ("[RESPONSE_TIME] < 1s", {"response_time_ms": 999.0}, True),
    ('[BODY] contains "ok"', {"body": "all ok"}, True),
    ('[BODY] !contains "error"', {"body": "all ok"}, True),
    ('[BODY] == "pong"', {"body": "pong"}, True),
    ("[BODY] > 5", {"body": " 7 "}, True),
    ("[BODY] > 5", {"body": "seven"}, False),
    ('[BODY].status == "UP"', {"body": JSON_BODY}, True),
    ("[BODY].status == UP", {"body": JSON_BODY}, True),
    ('[BODY].status != "DOWN"', {"body": JSON_BODY}, True),
    ("[BODY].count == 3", {"body": JSON_BODY}, True),
    ("[BODY].count == 3.0", {"body": JSON_BODY}, True),  # numerically
    ('[BODY].count == "3"', {"body": JSON_BODY}, True),  # as text
    ("[BODY].count > 2", {"body": JSON_BODY}, True),
    ("[BODY].ratio <= 0.5", {"body": JSON_BODY}, True),
    ("[BODY].version > 9", {"body": JSON_BODY}, True),  # a numeric string compares as a number
    ("[BODY].ok == true", {"body": JSON_BODY}, True),
    ("[BODY].gone == null", {"body": JSON_BODY}, True),
    ('[BODY].items[1].name == "b"', {"body": JSON_BODY}, True),
    ('[BODY].items[-1].name == "b"', {"body": JSON_BODY}, True),
    ('[BODY].items.0.name == "a"', {"body": JSON_BODY}, True),
    ('[BODY].tags contains "y"', {"body": JSON_BODY}, True),
    ('[BODY].tags contains "z"', {"body": JSON_BODY}, False),
    ('[BODY]["a.b"].c == 1', {"body": JSON_BODY}, True),
    ('[BODY].missing != "x"', {"body": JSON_BODY}, False),  # a missing path fails, whatever the operator
    ("[BODY].items[5] != 1", {"body": JSON_BODY}, False),
    ("[BODY].status > 1", {"body": JSON_BODY}, False),
    ('[BODY].status == "UP"', {"body": "<html>UP</html>"}, False),  # not JSON
    ('[HEADER].content-type contains "json"', {"headers": {"Content-Type": "application/json"}}, True),
    ('[HEADER].CONTENT-TYPE contains "json"',
     {"headers": CaseInsensitiveDict({"content-type": "application/json"})}, True),
    ('[HEADER].x-missing !contains "a"', {"headers": {}}, False),
    ("[CERTIFICATE_EXPIRATION] > 48h", {"certificate_expiration": 3 * 86400.0}, True),
    ("[CERTIFICATE_EXPIRATION] > 48h", {"certificate_expiration": 86400.0}, False),
    ("[CERTIFICATE_EXPIRATION] > 0s", {"certificate_expiration": -60.0}, False),
    ("[CERTIFICATE_EXPIRATION] > 1d", {"certificate_expiration": None}, False),
])
def test_evaluation(text: str, context: dict, holds: bool) -> None:
    assert condition_evaluate(text, ConditionContext(**context)) is holds
    assert condition_evaluate(condition_parse(text), context) is holds  # a plain mapping does as well


@pytest.mark.parametrize(("text", "context", "failure"), [
    ("[STATUS] == 200", {"status": 503}, "[STATUS] == 200 (status was 503)"),
    ("[STATUS] == 200", {}, "[STATUS] == 200 (there was no status)"),
    ("[RESPONSE_TIME] < 300", {"response_time_ms": 450.4}, "[RESPONSE_TIME] < 300 (response time was 450 ms)"),
    ('[BODY].status == "UP"', {"body": '{"status": "DOWN"}'}, "[BODY].status == \"UP\" (value was 'DOWN')"),
    ('[BODY].status == "UP"', {"body": "{}"}, '[BODY].status == "UP" (no such path in the JSON body)'),
    ('[BODY].status == "UP"', {"body": "oops"}, '[BODY].status == "UP" (the body is not JSON)'),
    ('[BODY] contains "ok"', {"body": "x" * 100},
     f"[BODY] contains \"ok\" (body was '{'x' * 57}...')"),
    ('[HEADER].server == "nginx"', {}, '[HEADER].server == "nginx" (there was no server header)'),
    ("[CERTIFICATE_EXPIRATION] > 48h", {"certificate_expiration": 7200.0},
     "[CERTIFICATE_EXPIRATION] > 48h (certificate expires in 2.0h)"),
    ("[CERTIFICATE_EXPIRATION] > 48h", {"certificate_expiration": -5 * 86400.0},
     "[CERTIFICATE_EXPIRATION] > 48h (certificate expired 5.0d ago)"),
])
def test_a_failure_says_what_was_actually_there(text: str, context: dict, failure: str) -> None:
    assert condition_failure(text, ConditionContext(**context)) == failure


def test_a_pathologically_nested_body_is_not_json_rather_than_a_crash() -> None:
    assert condition_evaluate("[BODY].a == 1", ConditionContext(body="[" * 200_000)) is False


def test_conditions_reference_finds_a_placeholder() -> None:
    assert conditions_reference(["[BODY] contains ok", "[STATUS] == 404"], "STATUS") is True
    assert conditions_reference(["[BODY] contains ok", "not a condition"], "STATUS") is False
