"""Property-based tests of the condition language: no input crashes the parser or the evaluator."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lookout.probes.engine.conditions import (
    OPERATORS,
    PLACEHOLDERS,
    Condition,
    ConditionContext,
    ConditionError,
    condition_evaluate,
    condition_failure,
    condition_parse,
)

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces of the grammar, recombined at random: near-misses find more parser paths than random text.
FRAGMENTS = [
    *(f"[{name}]" for name in PLACEHOLDERS), "[status]", "[", "]", ".", "..", "[0]", "[-1]", '["k"]', "[x]",
    *OPERATORS, "=", "!", "<>", "=>", " ", "\t", '"', '\\"', "\\", "200", "-3", "1.5", "48h", "1h30m", "300ms",
    "UP", "contains", "content-type", "é", "\u0000", "\n", "\ud800", "🙂", "9" * 20,
]


def parse_or_error(text: str) -> Condition | None:
    try:
        condition = condition_parse(text)
    except ConditionError as exc:
        assert str(exc)
        assert exc.position is None or 0 <= exc.position <= len(text)
        return None
    assert isinstance(condition, Condition)
    return condition


@SETTINGS
@given(st.text(max_size=600))
def test_any_text_parses_or_raises_condition_error_only(text: str) -> None:
    parse_or_error(text)


@SETTINGS
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=3), max_size=14).map("".join))
def test_grammar_shaped_noise_parses_or_raises_condition_error_only(text: str) -> None:
    condition = parse_or_error(text)
    if condition is not None:
        assert condition_parse(condition.text) == condition  # what parsed once parses the same again


def quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


PRINTABLE = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=30)
KEYS = st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters='.[]" \t'), min_size=1,
               max_size=8)
PATHS = st.lists(st.one_of(KEYS.map(lambda key: "." + key), st.integers(-5, 5).map(lambda index: f"[{index}]"),
                           PRINTABLE.map(lambda key: f"[{quoted(key)}]")), max_size=4).map("".join)
NUMBERS = st.one_of(st.integers(-10**6, 10**6).map(str),
                    st.decimals(-10**6, 10**6, places=3, allow_nan=False, allow_infinity=False).map(str))
DURATIONS = st.lists(st.tuples(st.integers(0, 999), st.sampled_from(["ms", "s", "m", "h", "d"])), min_size=1,
                     max_size=3).map(lambda parts: "".join(f"{amount}{unit}" for amount, unit in parts))


@st.composite
def conditions(draw: st.DrawFn) -> str:
    placeholder = draw(st.sampled_from(PLACEHOLDERS))
    space = draw(st.sampled_from(["", " ", "  ", "\t"]))
    if placeholder in ("STATUS", "RESPONSE_TIME", "CERTIFICATE_EXPIRATION"):
        operator = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        value = {"STATUS": st.integers(100, 599).map(str), "RESPONSE_TIME": NUMBERS | DURATIONS,
                 "CERTIFICATE_EXPIRATION": DURATIONS}[placeholder]
        return f"[{placeholder}]{space}{operator}{space}{draw(value)}"
    path = draw(PATHS) if placeholder == "BODY" else "." + draw(st.sampled_from(["content-type", "X-Id", "etag"]))
    operator = draw(st.sampled_from(OPERATORS))
    if operator in ("<", "<=", ">", ">="):
        value = draw(NUMBERS)
    else:
        value = quoted(draw(PRINTABLE))
    return f"[{placeholder}]{path} {operator} {value}"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)
BODIES = st.one_of(st.text(max_size=200), JSON_VALUES.map(json.dumps), st.just("[" * 5000))
CONTEXTS = st.builds(
    ConditionContext,
    status=st.none() | st.integers(0, 999),
    response_time_ms=st.floats(0, 10**7, allow_nan=False),
    body=BODIES,
    headers=st.dictionaries(st.sampled_from(["Content-Type", "content-type", "X-Id", "ETag"]), st.text(max_size=20)),
    certificate_expiration=st.none() | st.floats(-10**9, 10**9, allow_nan=False),
)


@SETTINGS
@given(conditions())
def test_every_well_formed_condition_parses(text: str) -> None:
    condition = condition_parse(text)

    assert condition.text == text.strip()
    assert condition_parse(condition.text) == condition


@SETTINGS
@given(conditions(), CONTEXTS)
def test_evaluation_never_raises_and_agrees_with_the_failure_text(text: str, context: ConditionContext) -> None:
    holds = condition_evaluate(text, context)
    failure = condition_failure(text, context)

    assert isinstance(holds, bool)
    assert (failure is None) is holds
    if failure is not None:
        assert failure.startswith(condition_parse(text).text)


@SETTINGS
@given(PRINTABLE)
def test_a_quoted_value_comes_back_exactly(value: str) -> None:
    assert condition_parse(f"[BODY] == {quoted(value)}").value == value
    assert condition_evaluate(f"[BODY] == {quoted(value)}", ConditionContext(body=value)) is True
