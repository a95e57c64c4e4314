"""The Judge0 wire mapping, pure: parsing submissions, rendering results, the catalogue.

Where the official SDK (``judge0`` on PyPI) is strict about a response, the
test hands our output to the SDK's own model classes, so a drift breaks here
and not first at a user's.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import judge0
import orjson
import pytest
from judge0.base_types import Config as SdkConfig
from judge0.base_types import Language as SdkLanguage
from runstream.schemas.codec import result_to_doc, validate_result_doc
from runstream.schemas.models import (
    ExecutionRequest,
    ExecutionResult,
    PhaseResult,
    StandardChecker,
    Status,
    TestResult,
)
from runstream.services.execution.languages import Registry
from runstream.services.ingress.judge0 import statuses as st
from runstream.services.ingress.judge0._b64 import decode64, encode64
from runstream.services.ingress.judge0.catalog import Catalog, display_name, workers
from runstream.services.ingress.judge0.config import Judge0Config, about, config_info
from runstream.services.ingress.judge0.errors import (
    BadParameter,
    FieldErrors,
    NotFoundJudge0,
    NotUtf8,
)
from runstream.services.ingress.judge0.submission import build_request
from runstream.services.ingress.judge0.tokens import issued_at_ms, new_token, recently_issued
from runstream.services.ingress.judge0.wire import (
    DEFAULT_FIELDS,
    FIELDS,
    callback_body,
    parse_fields,
    pending_doc,
    seconds,
    submission_doc,
)
from runstream.services.settings import Settings

SETTINGS = Settings.from_env({})
CONFIG = Judge0Config.from_settings(SETTINGS)
REGISTRY = Registry.load()
VERSIONS = {"python": ["3.11.2"], "cpp": ["12.2.0"], "c": ["12.2.0"]}
CATALOG = Catalog.build(REGISTRY, VERSIONS)
T0 = datetime(2026, 11, 29, 12, 0, 0, 123000, tzinfo=UTC)


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def parse(params: dict[str, Any], *, b64_flag: bool = True,
          config: Judge0Config = CONFIG) -> ExecutionRequest:
    return build_request(params, new_token(), base64_encoded=b64_flag,
                         languages=CATALOG.by_id, config=config)


def errors_of(params: dict[str, Any], **kw: Any) -> dict[str, list[str]]:
    with pytest.raises(FieldErrors) as caught:
        parse(params, **kw)
    assert caught.value.http_status == 422
    return caught.value.errors


def finished(req: ExecutionRequest, status: Status, *, run: PhaseResult | None = None,
             compile: PhaseResult | None = None, tests: list[TestResult] | None = None,
             message: str | None = None) -> dict[str, Any]:
    """The result document a worker would store for ``req``."""
    doc = result_to_doc(ExecutionResult(
        id=req.id, status=status, message=message, language=req.language, version="3.11.2",
        worker="w1", compile=compile, run=run, tests=tests or [], enqueued=T0,
        started=T0 + timedelta(milliseconds=5), finished=T0 + timedelta(milliseconds=40),
        metadata=req.metadata))
    validate_result_doc(doc)
    return doc


# -- statuses and verdicts ---------------------------------------------------------


def test_statuses_are_judge0s_fourteen() -> None:
    listed = st.statuses()
    assert [s["id"] for s in listed] == list(range(1, 15))
    assert listed[0] == {"id": 1, "description": "In Queue"}
    assert listed[10] == {"id": 11, "description": "Runtime Error (NZEC)"}
    assert listed[13] == {"id": 14, "description": "Exec Format Error"}


@pytest.mark.parametrize(("verdict", "signal", "expected"), [
    ("ok", None, 3), ("wrong_answer", None, 4), ("time_limit_exceeded", "SIGKILL", 5),
    ("compile_error", None, 6), ("runtime_error", "SIGSEGV", 7),
    ("runtime_error", "SIGXFSZ", 8), ("runtime_error", "SIGFPE", 9),
    ("runtime_error", "SIGABRT", 10), ("runtime_error", None, 11),
    ("runtime_error", "SIGTERM", 12), ("memory_limit_exceeded", "SIGKILL", 12),
    ("output_limit_exceeded", None, 8), ("expired", None, 13), ("rejected", None, 13),
    ("internal_error", None, 13),
])
def test_verdict_to_status(verdict: str, signal: str | None, expected: int) -> None:
    assert st.judge0_status(verdict, signal) == expected


def test_every_runstream_verdict_has_a_status() -> None:
    assert set(st.BY_VERDICT) == {s.value for s in Status}


# -- base64 as Ruby does it ----------------------------------------------------------


def test_encode64_breaks_lines_like_ruby() -> None:
    assert encode64(b"hello, Judge0\n") == "aGVsbG8sIEp1ZGdlMAo=\n"
    long = encode64(b"x" * 100)
    lines = long.split("\n")
    assert long.endswith("\n") and [len(x) for x in lines[:-1]] == [60, 60, 16]
    assert base64.b64decode(long.replace("\n", "")) == b"x" * 100
    assert encode64(b"") == ""


@pytest.mark.parametrize("text", ["aGVsbG8=", "aGVs\nbG8=\n", "aGVsbG8", "a GVs*bG8",
                                  "aGVsbG8=junk"])
def test_decode64_is_lenient(text: str) -> None:
    assert decode64(text) == b"hello"


# -- tokens --------------------------------------------------------------------------


def test_tokens_are_uuid4_and_carry_their_time() -> None:
    token = new_token(now_ms=1_700_000_000_000)
    assert uuid.UUID(token).version == 4 and str(uuid.UUID(token)) == token
    assert issued_at_ms(token) == 1_700_000_000_000
    assert recently_issued(token, 60, now_ms=1_700_000_030_000)
    assert not recently_issued(token, 60, now_ms=1_700_000_090_000)
    assert new_token() != new_token()


def test_foreign_tokens_are_not_recent() -> None:
    assert issued_at_ms("not-a-token") is None
    assert issued_at_ms(str(uuid.uuid1())) is None
    assert not recently_issued("../../etc/passwd", 1e9)
    # A random v4 token names a random instant: not "now" (about 1 in 10^8 would be).
    assert not recently_issued(str(uuid.uuid4()), 300)


# -- submissions -> requests ---------------------------------------------------------


def test_minimal_submission() -> None:
    req = parse({"source_code": b64("print('hi')"), "language_id": 71})
    assert req.language == "python" and req.files[0].content == b"print('hi')"
    assert uuid.UUID(req.id).version == 4
    assert req.tests == () and req.stdin == b"" and req.args == ()
    limits = req.limits
    assert (limits.cpu_ms, limits.wall_ms, limits.memory_mb) == (
        SETTINGS.default_cpu_ms, SETTINGS.default_wall_ms, SETTINGS.default_memory_mb)
    echo = req.metadata["judge0"] if req.metadata else {}
    assert echo["language_id"] == 71 and base64.b64decode(echo["source_code"]) == b"print('hi')"


def test_submission_with_everything_judge0_units_to_ours() -> None:
    req = parse({"source_code": b64("x"), "language_id": "52", "stdin": b64("a b\n"),
                 "expected_output": b64("ok\n"), "cpu_time_limit": 2.5, "cpu_extra_time": "0.5",
                 "wall_time_limit": 4, "memory_limit": 100000, "max_processes_and_or_threads": 8,
                 "max_file_size": 512, "number_of_runs": 3, "stack_limit": 1000,
                 "command_line_arguments": "one 'two words' three;rm -rf|x"})
    assert req.language == "cpp"
    assert req.limits.cpu_ms == 3000 and req.limits.wall_ms == 4000
    assert req.limits.memory_mb == 98  # 100000 KB rounded up to whole MiB
    assert req.limits.processes == 8 and req.limits.file_size_kb == 512
    assert req.args == ("one", "two words", "threerm", "-rfx")  # $&;<>|` stripped
    assert len(req.tests) == 3
    assert all(t.stdin == b"a b\n" and t.expected_output == "ok\n" for t in req.tests)
    echo = req.metadata["judge0"] if req.metadata else {}
    assert echo["cpu_time_limit"] == 2.5 and echo["memory_limit"] == 100000
    assert echo["number_of_runs"] == 3 and echo["stack_limit"] == 1000


def test_plain_text_submission_and_form_strings() -> None:
    req = parse({"source_code": "puts gets", "language_id": "72", "stdin": "héllo",
                 "enable_network": "false", "redirect_stderr_to_stdout": "0"}, b64_flag=False)
    assert req.language == "ruby" and req.stdin == "héllo".encode()


def test_expected_output_makes_one_test() -> None:
    req = parse({"source_code": b64("print(input())"), "language_id": 71, "stdin": b64("a"),
                 "expected_output": b64("a")})
    assert len(req.tests) == 1 and req.tests[0].stdin == b"a" and req.stdin == b""


def test_runstreams_judging_fields_are_not_judge0s() -> None:
    """Judge0 keeps its own semantics: its expected_output is compared line by line (the
    default checker); runstream's checker, interactor, points and stop_on_failure are
    attributes Judge0 does not know, dropped as Judge0 drops them (docs/judging.md)."""
    req = parse({"source_code": b64("print(input())"), "language_id": 71, "stdin": b64("a"),
                 "expected_output": b64("a"), "number_of_runs": 2, "checker": "tokens",
                 "interactor": {"language": "python", "source": "print(1)"},
                 "points": 5, "group": "g", "stop_on_failure": True})
    assert req.checker == StandardChecker() and req.checker.kind == "lines"
    assert req.checker_program is None and req.interactor is None
    assert not req.stop_on_failure
    assert [(t.checker, t.points, t.group) for t in req.tests] == [(None, None, None)] * 2


def test_cpu_limit_is_capped_by_the_server_maximum() -> None:
    req = parse({"source_code": b64("x"), "language_id": 71,
                 "cpu_time_limit": CONFIG.max_cpu_time_limit, "cpu_extra_time": 5})
    assert req.limits.cpu_ms == SETTINGS.max_cpu_ms


def test_blank_submission_names_both_fields() -> None:
    assert errors_of({}) == {"language_id": ["can't be blank"],
                             "source_code": ["can't be blank"]}
    assert errors_of({"language_id": 71, "source_code": b64("   \n")}) == {
        "source_code": ["can't be blank"]}


def test_unknown_language_id() -> None:
    assert errors_of({"language_id": 9999, "source_code": b64("x")}) == {
        "language_id": ["language with id 9999 doesn't exist"]}
    assert errors_of({"language_id": "abc", "source_code": b64("x")}) == {
        "language_id": ["language with id 0 doesn't exist"]}


def test_limit_errors_in_judge0s_words() -> None:
    errors = errors_of({"language_id": 71, "source_code": b64("x"), "wall_time_limit": 1000,
                        "memory_limit": 100, "cpu_time_limit": "abc", "number_of_runs": 0,
                        "max_processes_and_or_threads": -1, "cpu_extra_time": [1]})
    assert errors == {
        "wall_time_limit": [f"must be less than or equal to {CONFIG.max_wall_time_limit}"],
        "memory_limit": ["must be greater than or equal to 2048"],
        "cpu_time_limit": ["is not a number"],
        "number_of_runs": ["must be greater than 0"],
        "max_processes_and_or_threads": ["must be greater than 0"],
        "cpu_extra_time": ["is not a number"],
    }
    assert errors_of({"language_id": 71, "source_code": b64("x"), "stack_limit": 10**400,
                      "wall_time_limit": "1e999"}) == {
        "stack_limit": ["is not a number"], "wall_time_limit": ["is not a number"]}
    assert errors_of({"language_id": 71, "source_code": b64("x"),
                      "memory_limit": CONFIG.max_memory_limit + 1}) == {
        "memory_limit": [f"must be less than or equal to {CONFIG.max_memory_limit}"]}


def test_unsupported_options_are_refused_like_a_judge0_that_disabled_them() -> None:
    errors = errors_of({"language_id": 71, "source_code": b64("x"), "compiler_options": "-O2",
                        "additional_files": "UEsFBg==", "enable_network": True,
                        "enable_per_process_and_thread_time_limit": "true",
                        "command_line_arguments": "x" * 513})
    assert errors == {
        "compiler_options": ["setting compiler options is not allowed"],
        "additional_files": ["setting additional files is not allowed"],
        "enable_network": ["enabling network is not allowed"],
        "enable_per_process_and_thread_time_limit": ["this option cannot be enabled"],
        "command_line_arguments": ["is too long (maximum is 512 characters)"],
    }


def test_text_that_is_not_utf8_is_refused_for_stdin() -> None:
    errors = errors_of({"language_id": 71, "source_code": b64(b"\xff\xfe"),
                        "stdin": b64(b"\xff")})
    assert list(errors) == ["stdin"]  # binary source is fine: files travel as bytes


def test_callback_url_is_taken_when_it_is_an_http_url() -> None:
    assert errors_of({"language_id": 71, "source_code": b64("x"), "callback_url": "ftp://x"}
                     ) == {"callback_url": ["is not a valid http(s) URL"]}
    req = parse({"language_id": 71, "source_code": b64("x"),
                 "callback_url": "http://example.test/cb"})
    assert req.callback is not None and req.callback.url == "http://example.test/cb"


# -- results -> submissions ----------------------------------------------------------


def test_accepted_result_with_every_field() -> None:
    req = parse({"source_code": b64("print('hi')"), "language_id": 71, "stdin": b64("in")})
    doc = finished(req, Status.OK, run=PhaseResult(stdout=b"hi\n", exit_code=0, wall_ms=31,
                                                    cpu_ms=12, memory_kb=3900))
    out = submission_doc(doc, FIELDS, base64_encoded=True, catalog=CATALOG)
    assert tuple(out) == FIELDS
    assert out["token"] == req.id and out["status"] == {"id": 3, "description": "Accepted"}
    assert out["status_id"] == 3 and out["language_id"] == 71
    assert out["language"] == {"id": 71, "name": "Python (3.11.2)"}
    assert out["stdout"] == "aGkK\n" and out["stderr"] is None and out["compile_output"] is None
    assert out["source_code"] == encode64(b"print('hi')") and out["stdin"] == "aW4=\n"
    assert out["time"] == "0.012" and out["wall_time"] == "0.031" and out["memory"] == 3900
    assert out["exit_code"] == 0 and out["exit_signal"] is None and out["message"] is None
    assert out["created_at"] == "2026-11-29T12:00:00.123Z"
    assert out["finished_at"] == "2026-11-29T12:00:00.163Z"
    assert out["cpu_time_limit"] == "5.0" and out["memory_limit"] == 262144
    # The SDK's own model takes it: no unknown key, base64 valid, dates parse.
    sub = judge0.Submission()
    sub.set_attributes(orjson.loads(orjson.dumps(out)))
    assert sub.stdout == "hi\n" and sub.status == judge0.Status.ACCEPTED and sub.time == 0.012
    assert sub.source_code == "print('hi')" and sub.finished_at is not None


def test_plain_text_and_default_fields() -> None:
    req = parse({"source_code": b64("x"), "language_id": 71})
    doc = finished(req, Status.OK, run=PhaseResult(stdout=b"hi\n", exit_code=0))
    out = submission_doc(doc, parse_fields(None), base64_encoded=False, catalog=CATALOG)
    assert list(out) == ["stdout", "time", "memory", "stderr", "token", "compile_output",
                         "message", "status"]
    assert set(out) == set(DEFAULT_FIELDS) and out["stdout"] == "hi\n"


def test_binary_output_needs_base64() -> None:
    req = parse({"source_code": b64("x"), "language_id": 71})
    doc = finished(req, Status.OK, run=PhaseResult(stdout=b"\xff\xfe", exit_code=0))
    with pytest.raises(NotUtf8) as caught:
        submission_doc(doc, parse_fields("stdout"), base64_encoded=False)
    assert caught.value.http_status == 400 and "base64_encoded=true" in caught.value.body["error"]
    out = submission_doc(doc, parse_fields("stdout"), base64_encoded=True)
    assert base64.b64decode(out["stdout"]) == b"\xff\xfe"


def test_fields_parameter() -> None:
    assert parse_fields("*") == FIELDS
    assert parse_fields("status,token,stdout") == ("stdout", "token", "status")
    with pytest.raises(BadParameter) as caught:
        parse_fields("stdout,foo,queue_host")
    assert caught.value.body == {"error": "invalid fields: [foo, queue_host]"}


def test_compile_error_nulls_the_run() -> None:
    req = parse({"source_code": b64("int main(){"), "language_id": 50})
    doc = finished(req, Status.COMPILE_ERROR, compile=PhaseResult(
        stderr=b"main.c:1: error: expected '}'\n", exit_code=1, cpu_ms=50))
    out = submission_doc(doc, FIELDS, base64_encoded=False, catalog=CATALOG)
    assert out["status"]["id"] == 6 and "expected '}'" in out["compile_output"]
    assert all(out[k] is None for k in ("stdout", "stderr", "time", "memory", "exit_code",
                                        "exit_signal", "message"))


def test_compile_timeout_says_so() -> None:
    req = parse({"source_code": b64("x"), "language_id": 50})
    doc = finished(req, Status.COMPILE_ERROR, compile=PhaseResult(time_limit="wall",
                                                                  signal="SIGKILL"))
    out = submission_doc(doc, ("compile_output",), base64_encoded=False)
    assert out["compile_output"] == "Compilation time limit exceeded."


@pytest.mark.parametrize(("status", "phase", "expected_id", "message"), [
    (Status.RUNTIME_ERROR, PhaseResult(exit_code=3), 11, "Exited with error status 3"),
    (Status.RUNTIME_ERROR, PhaseResult(signal="SIGSEGV"), 7, "Caught fatal signal 11"),
    (Status.TIME_LIMIT_EXCEEDED, PhaseResult(signal="SIGKILL", time_limit="cpu"), 5,
     "Time limit exceeded"),
    (Status.MEMORY_LIMIT_EXCEEDED, PhaseResult(signal="SIGKILL", oom_killed=True), 12,
     "Memory limit exceeded"),
    (Status.OUTPUT_LIMIT_EXCEEDED, PhaseResult(output_limit_hit=True, signal="SIGKILL"), 8,
     "Output limit exceeded"),
])
def test_failures(status: Status, phase: PhaseResult, expected_id: int, message: str) -> None:
    req = parse({"source_code": b64("x"), "language_id": 71})
    out = submission_doc(finished(req, status, run=phase), FIELDS, base64_encoded=False)
    assert out["status"]["id"] == expected_id and out["message"] == message
    assert out["exit_code"] == (phase.exit_code or 0)  # Judge0: 0 when killed
    assert out["exit_signal"] == ({"SIGSEGV": 11, "SIGKILL": 9}.get(phase.signal or ""))


def test_not_run_is_internal_error_with_our_reason() -> None:
    req = parse({"source_code": b64("x"), "language_id": 71})
    doc = finished(req, Status.EXPIRED, message="the deadline passed before it ran")
    out = submission_doc(doc, FIELDS, base64_encoded=True)
    assert out["status"] == {"id": 13, "description": "Internal Error"}
    assert base64.b64decode(out["message"]) == b"the deadline passed before it ran"
    assert out["stdout"] is None and out["exit_code"] is None


def test_runs_show_the_first_failure_and_mean_resources() -> None:
    req = parse({"source_code": b64("x"), "language_id": 71, "number_of_runs": 3,
                 "expected_output": b64("1")})
    tests = [TestResult(0, Status.OK, PhaseResult(stdout=b"1\n", exit_code=0, cpu_ms=10,
                                                  memory_kb=1000)),
             TestResult(1, Status.WRONG_ANSWER, PhaseResult(stdout=b"2\n", exit_code=0,
                                                            cpu_ms=30, memory_kb=3000)),
             TestResult(2, Status.OK, PhaseResult(stdout=b"1\n", exit_code=0, cpu_ms=99))]
    out = submission_doc(finished(req, Status.WRONG_ANSWER, tests=tests), FIELDS,
                         base64_encoded=False)
    assert out["status"]["id"] == 4 and out["stdout"] == "2\n"
    assert out["time"] == "0.02" and out["memory"] == 2000 and out["number_of_runs"] == 3
    assert out["expected_output"] == "1"


def test_a_native_result_renders_too() -> None:
    doc = result_to_doc(ExecutionResult(id="native-1", status=Status.OK, language="cpp",
                                        run=PhaseResult(stdout=b"x", exit_code=0),
                                        finished=T0))
    out = submission_doc(doc, FIELDS, base64_encoded=True, catalog=CATALOG)
    assert out["language_id"] == 54 and out["source_code"] is None
    assert out["language"] == {"id": 54, "name": "C++ (GCC 12.2.0)"}
    # Hostile metadata under our key is ignored, not trusted.
    doc["metadata"] = {"judge0": {"language_id": "x", "source_code": 5, "stdin": "!!"}}
    out = submission_doc(doc, FIELDS, base64_encoded=True, catalog=CATALOG)
    assert out["language_id"] == 54 and out["source_code"] is None


def test_pending_has_only_token_and_status() -> None:
    out = pending_doc("t-1", FIELDS)
    assert tuple(out) == FIELDS and out["status"] == {"id": 1, "description": "In Queue"}
    assert out["token"] == "t-1" and out["status_id"] == 1
    assert all(v is None for k, v in out.items() if k not in ("token", "status", "status_id"))
    sub = judge0.Submission()
    sub.set_attributes(out)
    assert not sub.is_done()


def test_callback_body_is_default_fields_in_base64() -> None:
    req = parse({"source_code": b64("x"), "language_id": 71})
    body = orjson.loads(callback_body(finished(req, Status.OK, run=PhaseResult(
        stdout=b"hi\n", exit_code=0, cpu_ms=1))))
    assert set(body) == set(DEFAULT_FIELDS) and body["stdout"] == "aGkK\n"
    assert body["token"] == req.id and body["status"]["id"] == 3 and body["time"] == "0.001"


def test_seconds() -> None:
    assert [seconds(x) for x in (0, 1, 10, 1500, 12345, None)] == [
        "0.0", "0.001", "0.01", "1.5", "12.345", None]


# -- the catalogue -------------------------------------------------------------------


def test_languages_list_every_id_the_sdk_resolves() -> None:
    listing = CATALOG.listing()
    ids = {e["id"] for e in listing}
    # judge0-python's 1.13.1 table for the twelve languages (CPP is 52, not 54).
    assert {71, 63, 74, 62, 50, 52, 60, 73, 72, 85, 68, 46} <= ids
    assert [e["name"] for e in listing] == sorted(e["name"] for e in listing)
    for entry in listing:
        SdkLanguage(**entry)
    assert CATALOG.names[71] == "Python (3.11.2)" and CATALOG.names[52] == "C++ (GCC 12.2.0)"
    assert all(e["is_archived"] is False for e in CATALOG.listing_all())


def test_every_language_judge0_runs_has_judge0_ids() -> None:
    # Judge0 CE 1.13.1 has no Tcl, AWK, Scheme, Forth, Nim, Ada or Racket, and its BASIC
    # is FreeBASIC (ours is yabasic): those have no id; every other language has one.
    without = {lang.name for lang in REGISTRY if not lang.judge0}
    assert without == {"tcl", "awk", "scheme", "basic", "forth", "nim", "ada", "racket"}
    assert len(CATALOG.canonical) == len(REGISTRY) - len(without)
    assert {CATALOG.by_id[i].name for i in (45, 51, 55, 56, 57, 58, 59, 61, 64, 65, 66, 67, 69,
                                            77, 78, 79, 80, 81, 82, 86, 88)} == {
        "assembly", "csharp", "commonlisp", "d", "elixir", "erlang", "fortran", "haskell",
        "lua", "ocaml", "octave", "pascal", "prolog", "cobol", "kotlin", "objectivec", "r",
        "scala", "sqlite", "clojure", "groovy"}


def test_language_detail_and_unknown_ids() -> None:
    detail = CATALOG.detail("62", SETTINGS.default_limits)
    assert detail["source_file"] == "Main.java" and detail["is_archived"] is False
    assert "javac" in detail["compile_cmd"] and "Main" in detail["run_cmd"]
    assert CATALOG.detail("71", SETTINGS.default_limits)["compile_cmd"] is None
    for raw in ("9999", "-1", "abc", "71.0", "\u00b2", "\u0667\u0661"):  # non-ASCII digits
        with pytest.raises(NotFoundJudge0):
            CATALOG.detail(raw, SETTINGS.default_limits)


def test_display_names() -> None:
    assert display_name("javascript", "18.19.0") == "JavaScript (Node.js 18.19.0)"
    assert display_name("python", None) == "Python"
    assert display_name("csharp", "6.8.0.105") == "C# (Mono 6.8.0.105)"
    assert display_name("sqlite", "3.40.1") == "SQL (SQLite 3.40.1)"


def test_config_info_has_the_39_keys_the_sdk_requires() -> None:
    info = config_info(CONFIG)
    assert len(info) == 39
    parsed = SdkConfig(**info)
    assert parsed.max_submission_batch_size == 20
    assert info["max_cpu_time_limit"] == SETTINGS.max_cpu_ms / 1000
    assert info["max_memory_limit"] == SETTINGS.max_memory_mb * 1024
    assert info["enable_callbacks"] is True


def test_about_names_a_version_the_sdk_has_a_table_for() -> None:
    from judge0.data import LANGUAGE_TO_LANGUAGE_ID
    assert about()["version"] in LANGUAGE_TO_LANGUAGE_ID


def test_workers_from_the_group() -> None:
    assert workers(lag=5, slots=4) == [{"queue": "1.13.1", "size": 1, "available": 4,
                                        "idle": 0, "working": 4, "paused": 0, "failed": 0}]
    assert workers(lag=0, slots=2)[0]["idle"] == 2


def test_the_webhook_deliverer_finds_this_body() -> None:
    from runstream.services.ingress.webhook_bodies import render
    req = parse({"source_code": b64("x"), "language_id": 71})
    doc = finished(req, Status.OK, run=PhaseResult(stdout=b"hi\n", exit_code=0))
    assert render("judge0", doc) == callback_body(doc)
