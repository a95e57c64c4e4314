"""The standard checkers: how a test's output is compared with its expected output.

Pure functions, no I/O (docs/judging.md). Each returns None
when the output is accepted, else a short comment saying where it differs (the
test's ``comment``), as contest systems' checkers do.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

from runstream.schemas.models import StandardChecker
from runstream.services.execution.verdict import normalise_output

#: How much of a differing token or line a comment quotes.
_QUOTE = 40


def _quote(text: str) -> str:
    return repr(text if len(text) <= _QUOTE else text[:_QUOTE] + "...")


def _exact(actual: str, expected: str) -> str | None:
    if actual == expected:
        return None
    at = next((i for i, (a, b) in enumerate(zip(actual, expected, strict=False)) if a != b),
              min(len(actual), len(expected)))
    return f"differs at byte {at}: expected {_quote(expected[at:])}, got {_quote(actual[at:])}"


def _lines(actual: str, expected: str) -> str | None:
    got, want = normalise_output(actual).split("\n"), normalise_output(expected).split("\n")
    for number, (a, b) in enumerate(zip(got, want, strict=False), start=1):
        if a != b:
            return f"line {number}: expected {_quote(b)}, got {_quote(a)}"
    if len(got) != len(want):
        return f"expected {len(want)} lines, got {len(got)}"
    return None


def _token_mismatch(got: list[str], want: list[str],
                    same: Callable[[str, str], str | None]) -> str | None:
    for number, (a, b) in enumerate(zip(got, want, strict=False), start=1):
        why = same(a, b)
        if why is not None:
            return f"token {number}: {why}"
    if len(got) != len(want):
        return f"expected {len(want)} tokens, got {len(got)}"
    return None


def _equal_token(a: str, b: str) -> str | None:
    return None if a == b else f"expected {_quote(b)}, got {_quote(a)}"


def _tokens(actual: str, expected: str) -> str | None:
    return _token_mismatch(actual.split(), expected.split(), _equal_token)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def close_enough(got: float, want: float, abs_error: float, rel_error: float) -> bool:
    """Within ``abs_error`` of ``want``, or within ``rel_error`` of it relatively (testlib's
    doubleCompare: either suffices)."""
    diff = abs(got - want)
    return diff <= abs_error or diff <= rel_error * abs(want)


def _floats(actual: str, expected: str, abs_error: float, rel_error: float) -> str | None:
    def same(a: str, b: str) -> str | None:
        want = _number(b)
        if want is None:  # a word of the expected answer: compared as a word
            return _equal_token(a, b)
        got = _number(a)
        if got is None:
            return f"expected the number {_quote(b)}, got {_quote(a)}"
        if not close_enough(got, want, abs_error, rel_error):
            return (f"expected {b}, got {a} (difference {abs(got - want):.3g}, allowed "
                    f"{abs_error:g} absolute or {rel_error:g} relative)")
        return None
    return _token_mismatch(actual.split(), expected.split(), same)


def _unordered(actual: str, expected: str) -> str | None:
    got = Counter(normalise_output(actual).split("\n"))
    want = Counter(normalise_output(expected).split("\n"))
    if got == want:
        return None
    missing, extra = want - got, got - want
    if missing:
        return f"line {_quote(next(iter(missing)))} expected but missing"
    return f"line {_quote(next(iter(extra)))} not expected"


def _case_insensitive(actual: str, expected: str) -> str | None:
    return _lines(actual.casefold(), expected.casefold())


def check(checker: StandardChecker, actual: bytes, expected: str) -> str | None:
    """None when ``actual`` (the program's stdout) is accepted, else why not."""
    text = actual.decode("utf-8", "replace")
    kind = checker.kind
    if kind == "exact":  # bytes: output that is not UTF-8 is not equal by replacement
        return None if actual == expected.encode("utf-8", "surrogatepass") else _exact(
            text, expected) or "differs in bytes that are not UTF-8"
    if kind == "tokens":
        return _tokens(text, expected)
    if kind == "floats":
        return _floats(text, expected, checker.abs_error, checker.rel_error)
    if kind == "unordered":
        return _unordered(text, expected)
    if kind == "case_insensitive":
        return _case_insensitive(text, expected)
    return _lines(text, expected)
