"""A result always fits one message: outputs are trimmed, flags set, the verdict kept."""

from __future__ import annotations

import orjson
from runstream.schemas.codec import encode_result, validate_result_doc
from runstream.schemas.fit import TRIMMED_NOTE, fit_result
from runstream.schemas.models import ExecutionResult, PhaseResult, Status, TestResult

MIB = 1024 * 1024


def _big_tests(count: int = 8) -> ExecutionResult:
    # The program: 8 tests, each 1 MiB of \x01 on stdout and on stderr
    # (JSON escapes each byte as six: \u0001).
    tests = [TestResult(index=i, status=Status.OK,
                        run=PhaseResult(stdout=b"\x01" * MIB, stderr=b"\x01" * MIB, exit_code=0))
             for i in range(count)]
    return ExecutionResult(id="big", status=Status.OK, language="python", tests=tests)


def test_a_result_that_fits_is_unchanged() -> None:
    result = ExecutionResult(id="x", status=Status.OK,
                             run=PhaseResult(stdout=b"hello\n", exit_code=0))
    assert fit_result(result, 8 * MIB) == encode_result(result)
    assert result.message is None


def test_huge_escaped_outputs_are_trimmed_to_fit_with_flags_and_a_note() -> None:
    result = _big_tests()
    assert len(encode_result(result)) > 90 * MIB
    payload = fit_result(result, 8 * MIB)
    assert 4 * MIB < len(payload) <= 8 * MIB  # trimmed, not emptied
    doc = orjson.loads(payload)
    validate_result_doc(doc)
    assert doc["status"] == "ok"
    assert TRIMMED_NOTE in doc["message"]
    for test in doc["tests"]:
        assert test["run"]["stdout_truncated"] and test["run"]["stderr_truncated"]
        assert test["run"]["stdout"]  # every stream keeps a fair share


def test_small_streams_keep_everything_and_large_ones_share_the_rest() -> None:
    result = ExecutionResult(id="x", status=Status.WRONG_ANSWER, message="first",
                             run=PhaseResult(stdout=b"a" * (4 * MIB), stderr=b"err\n"))
    payload = fit_result(result, MIB)
    doc = orjson.loads(payload)
    assert len(payload) <= MIB
    assert doc["run"]["stderr"] == "err\n" and not doc["run"]["stderr_truncated"]
    assert doc["run"]["stdout_truncated"]
    assert doc["status"] == "wrong_answer"
    assert doc["message"] == f"first; {TRIMMED_NOTE}"


def test_trimming_never_splits_a_utf8_character() -> None:
    result = ExecutionResult(id="x", status=Status.OK,
                             run=PhaseResult(stdout="é€😀".encode() * 200_000))
    doc = orjson.loads(fit_result(result, 256 * 1024))
    assert doc["run"]["encoding"] == "utf8"  # still text, not base64


def test_a_judge_programs_output_is_trimmed_too() -> None:
    # A checker that writes a MiB per test (its output cap) on 8 tests.
    result = _big_tests()
    for test in result.tests:
        test.judge = PhaseResult(stdout=b"\x01" * MIB, exit_code=0)
        test.comment = "ok"
    payload = fit_result(result, 8 * MIB)
    assert len(payload) <= 8 * MIB
    doc = orjson.loads(payload)
    validate_result_doc(doc)
    assert all(t["judge"]["stdout_truncated"] and t["comment"] == "ok" for t in doc["tests"])
