"""Scored tests: each test's points, the groups (subtasks) and the total. Pure, no I/O.

A test worth ``points`` earns them all when it passes, a checker's fraction of
them when it is ``partial``, nothing otherwise. A group earns the sum of its
tests' points only when every one of its tests passed (contest subtasks);
tests outside any group count on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runstream.schemas.models import Status, TestCase, TestResult


def earned(test: TestCase, status: Status, fraction: float) -> float | None:
    """What ``test`` earned with ``status`` (``fraction``: a partial verdict's share)."""
    if test.points is None:
        return None
    if status is Status.OK:
        return test.points
    if status is Status.PARTIAL:
        return test.points * fraction
    return 0.0


@dataclass(frozen=True, slots=True)
class Totals:
    """The scores of a request whose tests carry points."""

    score: float
    max_score: float
    groups: dict[str, tuple[float, float]] | None


def totals(tests: Sequence[TestCase], results: Sequence[TestResult]) -> Totals | None:
    """The total and the groups' scores; None when no test carries points."""
    if all(t.points is None for t in tests):
        return None
    earned = possible = 0.0
    groups: dict[str, tuple[float, float]] = {}
    passed: dict[str, bool] = {}
    for test, result in zip(tests, results, strict=True):
        points = test.points or 0.0
        score = result.score or 0.0
        possible += points
        if test.group is None:
            earned += score
            continue
        got, out_of = groups.get(test.group, (0.0, 0.0))
        groups[test.group] = (got + score, out_of + points)
        passed[test.group] = passed.get(test.group, True) and result.status is Status.OK
    for name, (got, out_of) in groups.items():
        groups[name] = (got if passed[name] else 0.0, out_of)
        earned += groups[name][0]
    return Totals(round(earned, 9), round(possible, 9), groups or None)

