"""The standard checkers, the testlib convention and scoring: pure, no services."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest
from runstream.schemas.codec import (
    decode_request,
    encode_request,
    result_to_doc,
    validate_result_doc,
)
from runstream.schemas.errors import InvalidRequest
from runstream.schemas.models import (
    ExecutionResult,
    Limits,
    PhaseResult,
    StandardChecker,
    Status,
    TestCase,
    TestResult,
)
from runstream.services.execution.checkers import check
from runstream.services.execution.judge import interaction_verdict
from runstream.services.execution.scoring import earned, totals
from runstream.services.execution.testlib import JudgeVerdict, judge_argv, read_verdict

LIMITS = Limits(1000, 1000, 64, 8, 64, 1024)


@pytest.mark.parametrize(("kind", "actual", "expected", "accepted"), [
    ("exact", b"1 2\n", "1 2\n", True),
    ("exact", b"1 2", "1 2\n", False),
    ("exact", b"\xff", "\ufffd", False),  # bytes, not their replacement
    ("lines", b"1 2  \n\n", "1 2", True),
    ("lines", b"1  2", "1 2", False),
    ("tokens", b"1\n  2\t3", "1 2 3\n", True),
    ("tokens", b"1 2", "1 2 3", False),
    ("unordered", b"b\na\nc\n", "a\nb\nc", True),
    ("unordered", b"a\na\nb", "a\nb\nb", False),
    ("case_insensitive", b"YES\nNo", "yes\nno", True),
    ("case_insensitive", b"YES", "no", False),
])
def test_standard_checkers(kind: str, actual: bytes, expected: str, accepted: bool) -> None:
    why = check(StandardChecker(kind), actual, expected)
    assert (why is None) is accepted, why


@pytest.mark.parametrize(("actual", "abs_error", "rel_error", "accepted"), [
    (b"3.1415927 x", 1e-6, 0.0, True),
    (b"3.1416 x", 1e-6, 0.0, False),
    (b"3.1416 x", 0.0, 1e-4, True),
    (b"3.1415927 y", 1e-6, 0.0, False),  # a word is compared as a word
    (b"nan x", 1.0, 1.0, False),
    (b"3.1415927", 1e-6, 0.0, False),  # a token missing
])
def test_floats_checker(actual: bytes, abs_error: float, rel_error: float,
                        accepted: bool) -> None:
    why = check(StandardChecker("floats", abs_error, rel_error), actual, "3.14159265 x")
    assert (why is None) is accepted, why


def test_a_wrong_line_is_named_in_the_comment() -> None:
    assert check(StandardChecker(), b"1\n3\n", "1\n2\n") == "line 2: expected '2', got '3'"


def _phase(code: int | None = 0, *, out: bytes = b"", err: bytes = b"",
           **kw: object) -> PhaseResult:
    return PhaseResult(stdout=out, stderr=err, exit_code=code, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("phase", "status", "fraction"), [
    (_phase(0, err=b"ok fine"), Status.OK, 1.0),
    (_phase(1, err=b"wrong answer 3 != 4"), Status.WRONG_ANSWER, 0.0),
    (_phase(2), Status.PRESENTATION_ERROR, 0.0),
    (_phase(7, out=b"0.25\n"), Status.PARTIAL, 0.25),
    (_phase(7, err=b"points 0.5 half of it"), Status.PARTIAL, 0.5),
    (_phase(7, out=b"1.5"), Status.INTERNAL_ERROR, 0.0),  # a score out of range
    (_phase(7, out=b"lots"), Status.INTERNAL_ERROR, 0.0),
    (_phase(3, err=b"bad answer file"), Status.INTERNAL_ERROR, 0.0),
    (_phase(42), Status.INTERNAL_ERROR, 0.0),  # lies with an unknown exit code
    (_phase(None, signal="SIGSEGV"), Status.INTERNAL_ERROR, 0.0),
    (_phase(None, signal="SIGKILL", time_limit="wall"), Status.INTERNAL_ERROR, 0.0),
    (_phase(None, signal="SIGKILL", oom_killed=True), Status.INTERNAL_ERROR, 0.0),
])
def test_read_verdict(phase: PhaseResult, status: Status, fraction: float) -> None:
    verdict = read_verdict(phase, LIMITS)
    assert (verdict.status, verdict.fraction) == (status, fraction)
    if status is Status.INTERNAL_ERROR:
        assert verdict.comment is not None and verdict.comment.startswith("judge error")


def test_judge_errors_name_what_went_wrong() -> None:
    assert "exited with 42, which is no verdict" in str(read_verdict(_phase(42), LIMITS).comment)
    timed = read_verdict(_phase(None, signal="SIGKILL", time_limit="wall"), LIMITS, "interactor")
    assert timed.comment == "judge error: the interactor exceeded its wall-time limit (1000 ms)"


def test_judge_argv_files_that_cannot_be_written_are_a_judge_failure(tmp_path: Path) -> None:
    # The prelude itself, in a plain shell: the copy into a directory fails.
    (tmp_path / "in").mkdir()
    argv = judge_argv(["/bin/echo", "ran"], [("in", 2)])
    done = subprocess.run(argv, input=b"ab", cwd=tmp_path, capture_output=True, timeout=10)
    assert done.returncode == 3 and b"cannot write the test's files" in done.stderr
    ok = judge_argv(["/bin/echo", "ran"], [("other", 2)])
    done = subprocess.run(ok, input=b"ab", cwd=tmp_path, capture_output=True, timeout=10)
    assert (done.returncode, done.stdout) == (0, b"ran other\n")
    assert (tmp_path / "other").read_bytes() == b"ab"


def test_judge_argv_writes_the_files_then_execs() -> None:
    argv = judge_argv(["/usr/bin/python3", "main.py"], [("in", 3), ("out", 0)], ["x y"])
    assert argv[:2] == ["/bin/sh", "-c"]
    assert argv[2] == ("{ head -c 3 > in && head -c 0 > out; } || { echo \"runstream: cannot "
                       "write the test's files into the judge's workspace\" >&2; exit 3; }; "
                       "exec \"$@\" in out 'x y'")
    assert argv[4:] == ["/usr/bin/python3", "main.py"]


@pytest.mark.parametrize(("program", "judge", "status"), [
    (Status.TIME_LIMIT_EXCEEDED, Status.INTERNAL_ERROR, Status.TIME_LIMIT_EXCEEDED),
    (Status.RUNTIME_ERROR, Status.WRONG_ANSWER, Status.WRONG_ANSWER),
    (Status.RUNTIME_ERROR, Status.OK, Status.RUNTIME_ERROR),
    (None, Status.INTERNAL_ERROR, Status.INTERNAL_ERROR),
    (None, Status.OK, Status.OK),
])
def test_interaction_verdict(program: Status | None, judge: Status, status: Status) -> None:
    assert interaction_verdict(program, JudgeVerdict(judge, 0.0, None)).status is status


def _t(points: float | None, group: str | None = None) -> TestCase:
    return TestCase(stdin=b"", expected_output=None, points=points, group=group)


def _r(status: Status, test: TestCase, fraction: float = 0.0) -> TestResult:
    return TestResult(0, status, PhaseResult(), score=earned(test, status, fraction))


def test_scores_groups_and_totals() -> None:
    tests = [_t(10), _t(20, "a"), _t(30, "a"), _t(40, "b"), _t(5)]
    statuses = [Status.OK, Status.OK, Status.WRONG_ANSWER, Status.OK, Status.PARTIAL]
    results = [_r(s, t, 0.5) for s, t in zip(statuses, tests, strict=True)]
    found = totals(tests, results)
    assert found is not None
    assert (found.score, found.max_score) == (10 + 40 + 2.5, 105)
    assert found.groups == {"a": (0.0, 50.0), "b": (40.0, 40.0)}
    assert totals([_t(None)], [_r(Status.OK, _t(None))]) is None


def _request(**extra: object) -> dict[str, object]:
    return {"language": "python", "source": "print(1)", "tests": [{"stdin": "1"}], **extra}


def test_judging_fields_round_trip() -> None:
    doc = _request(checker={"kind": "floats", "abs_error": 1e-6}, stop_on_failure=True,
                   tests=[{"stdin": "x", "points": 2.5, "group": "g", "checker": "tokens"}])
    req = decode_request(orjson.dumps(doc))
    assert req.checker == StandardChecker("floats", 1e-6, 0.0) and req.stop_on_failure
    assert (req.tests[0].points, req.tests[0].group) == (2.5, "g")
    assert decode_request(encode_request(req)) == req
    req = decode_request(orjson.dumps(_request(
        checker={"language": "c", "source": "int main(){}", "limits": {"wall_ms": 100}})))
    assert req.checker_program is not None and req.checker_program.limits.wall_ms == 100
    assert decode_request(encode_request(req)) == req
    req = decode_request(orjson.dumps(_request(interactor={"language": "python", "source": ""})))
    assert req.interactor is not None and decode_request(encode_request(req)) == req
    # a request without any of them travels as before
    assert b"checker" not in encode_request(decode_request(orjson.dumps(_request())))


@pytest.mark.parametrize(("extra", "field"), [
    ({"checker": "fuzzy"}, "checker"),
    ({"checker": {"kind": "floats", "abs_error": -1}}, "checker"),
    ({"checker": {"language": "c"}}, "checker"),
    ({"interactor": {"language": "c", "source": ""}, "tests": []}, "tests"),
    ({"interactor": {"language": "c", "source": ""},
      "checker": {"language": "c", "source": ""}}, "interactor"),
    ({"tests": [{"points": -1}]}, "tests.0.points"),
])
def test_bad_judging_fields_are_refused_by_name(extra: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        decode_request(orjson.dumps(_request(**extra)))
    assert e.value.field == field, e.value.message


def test_a_scored_result_validates() -> None:
    result = ExecutionResult(id="x", status=Status.PARTIAL, score=1.5, max_score=3.0,
                             groups={"g": (0.0, 1.0)}, judge_compile=PhaseResult(exit_code=0),
                             tests=[TestResult(0, Status.PARTIAL, PhaseResult(exit_code=0),
                                               score=1.5, comment="half",
                                               judge=PhaseResult(exit_code=7))])
    doc = result_to_doc(result)
    validate_result_doc(doc)
    assert doc["tests"][0]["comment"] == "half" and doc["groups"][0]["max_score"] == 1.0
