"""Piston v2's wire format, pure: version ranges, runtimes, bodies, limits, files,
error sentences and the rendering of results (services/ingress/piston)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from runstream.schemas.errors import (
    BrokerUnavailable,
    InvalidRequest,
    LimitExceeded,
    PayloadTooLarge,
    RunstreamError,
)
from runstream.services.execution.languages import Registry
from runstream.services.ingress.piston import errors, limits
from runstream.services.ingress.piston.errors import PistonRefusal
from runstream.services.ingress.piston.request import PistonJob, body_kind, build, parse_body
from runstream.services.ingress.piston.response import render
from runstream.services.ingress.piston.runtimes import (
    Runtime,
    packages,
    pinned,
    runtimes,
    satisfies,
    select,
    semver_of,
)
from runstream.services.ingress.problems import Overloaded
from runstream.services.settings import Settings

REGISTRY = Registry.load()
SERVED = {"python": ["3.11.2"], "javascript": ["20.20.2"], "c": ["12.2.0-14"],
          "cpp": ["12.2.0-14"], "java": ["17.0.15"], "go": ["1.26"]}
SETTINGS = Settings.from_env({})
CEILINGS = limits.Ceilings.of(SETTINGS)
MIB = 1024 * 1024


def available(served: dict[str, list[str]] | None = None) -> list[Runtime]:
    return runtimes(REGISTRY, SERVED if served is None else served)


def job(doc: dict[str, Any], served: dict[str, list[str]] | None = None) -> PistonJob:
    return build(doc, available(served), CEILINGS)


def refused(doc: dict[str, Any], served: dict[str, list[str]] | None = None) -> str:
    with pytest.raises(PistonRefusal) as e:
        job(doc, served)
    assert e.value.http_status == 400
    return e.value.message


HELLO = {"language": "python", "version": "*", "files": [{"content": "print(1)"}]}


# -- version ranges: npm semver's answers --------------------------------------------
# Captured from npm's semver 7.8.6 (node: semver.satisfies(v, range)) for these versions;
# Piston calls exactly that (api/src/runtime.js).
VERSIONS = ["3.11.2", "3.12.0", "3.10.0-alpha.7", "20.20.2", "1.26.8", "0.9.1"]
NPM_SATISFIES = [
    ("*", ["0.9.1", "1.26.8", "20.20.2", "3.11.2", "3.12.0"]),
    ("3", ["3.11.2", "3.12.0"]),
    ("3.x", ["3.11.2", "3.12.0"]),
    ("3.11", ["3.11.2"]),
    ("3.11.2", ["3.11.2"]),
    ("^3.10", ["3.11.2", "3.12.0"]),
    ("~3.11.0", ["3.11.2"]),
    (">=3.11 <3.12", ["3.11.2"]),
    ("3.10 - 3.12", ["3.11.2", "3.12.0"]),
    ("3.x || 20.x", ["20.20.2", "3.11.2", "3.12.0"]),
    ("v3.11.2", ["3.11.2"]),
    ("latest", []),
    (">3.11.2", ["20.20.2", "3.12.0"]),
    ("^0.9", ["0.9.1"]),
    ("3.10.0-alpha.7", ["3.10.0-alpha.7"]),
    (">=3.10.0-alpha.1", ["20.20.2", "3.10.0-alpha.7", "3.11.2", "3.12.0"]),
    ("20", ["20.20.2"]),
    ("1.26", ["1.26.8"]),
    ("3.11.2.1", []),
    ("a.b.c", []),
]


@pytest.mark.parametrize(("wanted", "matching"), NPM_SATISFIES)
def test_ranges_match_as_npm_semver_does(wanted: str, matching: list[str]) -> None:
    assert sorted(v for v in VERSIONS if satisfies(v, wanted)) == matching


def test_detected_versions_become_semver() -> None:
    assert semver_of("12.2.0-14") == "12.2.0"  # Debian's revision is not a prerelease
    assert semver_of("1.26") == "1.26.0"
    assert semver_of("17.0.15") == "17.0.15"
    assert semver_of("v5.36.0") == "5.36.0"
    assert semver_of("unknown") is None


def test_runtimes_list_piston_names_aliases_and_providers() -> None:
    listed = [rt.describe() for rt in available()]
    by_name = {d["language"]: d for d in listed}
    assert by_name["python"] == {"language": "python", "version": "3.11.2",
                                 "aliases": ["py", "py3", "python3"]}
    assert by_name["c++"]["runtime"] == "gcc" and by_name["c++"]["version"] == "12.2.0"
    assert "cpp" in by_name["c++"]["aliases"]
    assert by_name["javascript"]["runtime"] == "node"
    assert "runtime" not in by_name["java"]
    assert "ruby" not in by_name  # no live worker serves it: not listed
    assert packages(available())[0] == {"language": listed[0]["language"],
                                        "language_version": listed[0]["version"],
                                        "installed": True}


def test_select_takes_the_highest_match_by_name_or_alias() -> None:
    served = {"python": ["3.11.2", "3.12.1", "3.9.18"]}
    assert select(available(served), "py3", "*").version == "3.12.1"
    assert select(available(served), "python", "3.11").version == "3.11.2"
    assert select(available(served), "python", "<3.11").version == "3.9.18"
    assert select(available(), "cxx", "12").language == "c++"  # our alias too


def test_an_unknown_runtime_is_pistons_sentence() -> None:
    assert refused({**HELLO, "version": "latest"}) == "python-latest runtime is unknown"
    assert refused({**HELLO, "version": "4"}) == "python-4 runtime is unknown"
    assert refused({**HELLO, "language": "klingon"}) == "klingon-* runtime is unknown"


def test_requests_are_pinned_only_when_not_every_served_version_would_do() -> None:
    served = {"python": ["3.11.2", "3.12.1"]}
    rts = available(served)
    assert pinned(rts, select(rts, "python", "*"), "*") is None
    assert pinned(rts, select(rts, "python", "3.11"), "3.11") == "3.11.2"
    assert job({**HELLO, "version": "3.12"}, served).request.version == "3.12.1"
    assert job(HELLO, served).request.version is None


# -- bodies: content types and forms -----------------------------------------------
@pytest.mark.parametrize("content_type", [
    "application/json", "application/json; charset=utf-8", "text/plain;charset=UTF-8", None])
def test_json_is_read_with_or_without_its_content_type(content_type: str | None) -> None:
    assert body_kind(content_type) == "json"


def test_forms_are_read_and_other_types_are_pistons_415() -> None:
    assert body_kind("application/x-www-form-urlencoded") == "form"
    for other in ("multipart/form-data; boundary=x", "application/xml"):
        with pytest.raises(PistonRefusal) as e:
            body_kind(other)
        assert e.value.http_status == 415
        assert e.value.message == "requests must be of type application/json"


def test_pistonapis_form_body_is_a_request() -> None:
    # What pistonapi 1.0.1 sends (captured, compat/judge0-piston.md C.10).
    body = (b"language=python&version=3.12.0&files=print%28%27hi%27%29&stdin=x"
            b"&args=a&args=b&timeout=10000")
    doc = parse_body(body, "form")
    assert doc["files"] == [{"content": "print('hi')"}] and doc["args"] == ["a", "b"]
    made = job({**doc, "version": "*"}).request
    assert made.files[0].content == b"print('hi')" and made.args == ("a", "b")
    assert made.stdin == b"x\n"


def test_form_numbers_are_numbers() -> None:
    doc = parse_body(b"run_timeout=1500&run_memory_limit=-1&run_cpu_time=fast", "form")
    assert doc["run_timeout"] == 1500 and doc["run_memory_limit"] == -1
    assert doc["run_cpu_time"] == "fast"


def test_malformed_json_is_400_with_a_message() -> None:
    with pytest.raises(PistonRefusal, match="not valid JSON") as e:
        parse_body(b"{nope", "json")
    assert e.value.http_status == 400
    assert parse_body(b"[1, 2]", "json") == {}  # as body-parser: then every field is missing


# -- field checks, in Piston's order and words ---------------------------------------
@pytest.mark.parametrize(("doc", "sentence"), [
    ({}, "language is required as a string"),
    ({"language": 3, "version": "*", "files": []}, "language is required as a string"),
    ({"language": "python"}, "version is required as a string"),
    ({"language": "python", "version": ""}, "version is required as a string"),
    ({"language": "python", "version": "*"}, "files is required as an array"),
    ({"language": "python", "version": "*", "files": "print(1)"},
     "files is required as an array"),
    ({"language": "python", "version": "*", "files": [{"name": "a.py"}]},
     "files[0].content is required as a string"),
    ({"language": "python", "version": "*", "files": [{"content": "x"}, "y"]},
     "files[1].content is required as a string"),
    ({"language": "python", "version": "*", "files": []},
     "files must include at least one utf8 encoded file"),
    ({"language": "python", "version": "*", "files": [{"content": "eA==",
                                                       "encoding": "base64"}]},
     "files must include at least one utf8 encoded file"),
])
def test_missing_or_wrong_fields_get_pistons_sentences(doc: dict[str, Any],
                                                        sentence: str) -> None:
    assert refused(doc) == sentence


def test_files_are_decoded_and_the_first_utf8_one_is_the_entry() -> None:
    made = job({**HELLO, "files": [
        {"name": "data.bin", "content": base64.b64encode(b"\x00\xff").decode(),
         "encoding": "base64"},
        {"content": "print(open('data.bin','rb').read())"},
        {"name": "h.txt", "content": "6869", "encoding": "hex"},
        {"name": "odd.txt", "content": "as is", "encoding": "latin1"},  # Piston: utf8
        {"content": "unnamed"}]}).request
    assert [f.name for f in made.files] == [None, "data.bin", "h.txt", "odd.txt", "file4.code"]
    assert [f.content for f in made.files][1:4] == [b"\x00\xff", b"hi", b"as is"]
    assert made.language == "python" and made.id


@pytest.mark.parametrize(("item", "words"), [
    ({"content": "not base64!", "encoding": "base64"}, "files[1].content is not valid base64"),
    ({"content": "zz", "encoding": "hex"}, "files[1].content is not valid hex"),
    ({"name": "../escape.py", "content": "x"}, "files[1].name must be a plain file name"),
    ({"name": ".hidden", "content": "x"}, "files[1].name must be a plain file name"),
    ({"name": 5, "content": "x"}, "files[1].name must be a plain file name"),
])
def test_bad_files_are_refused_naming_the_file(item: dict[str, Any], words: str) -> None:
    assert words in refused({**HELLO, "files": [{"content": "print(1)"}, item]})


def test_duplicate_names_are_refused() -> None:
    files = [{"name": "a.py", "content": "1"}, {"name": "a.py", "content": "2"}]
    assert "same name" in refused({**HELLO, "files": files})


def test_stdin_gets_pistons_trailing_newline_and_args_must_be_strings() -> None:
    assert job({**HELLO, "stdin": "a\nb"}).request.stdin == b"a\nb\n"
    assert job({**HELLO, "stdin": "a\n"}).request.stdin == b"a\n"
    assert job(HELLO).request.stdin == b"\n"
    assert job({**HELLO, "args": ["1", "2", "3"]}).request.args == ("1", "2", "3")
    assert refused({**HELLO, "args": [1]}) == "args must be an array of strings"
    assert refused({**HELLO, "args": ["x"] * 65}).startswith("args: at most 64")
    assert refused({**HELLO, "stdin": 5}) == "stdin must be a string"
    assert job({**HELLO, "args": ["a\tb", "c\nd"]}).request.args == ("a\tb", "c\nd")


@pytest.mark.parametrize(("args", "words"), [
    (["a\0b"], "args.0: contains the control character U+0000 (NUL) at position 1"),
    (["ok", "\x1b[2J"], "args.1: contains the control character U+001B (ESC) at position 0"),
    (["\t\x7f"], "args.0: contains the control character U+007F (DEL) at position 1"),
])
def test_args_with_control_characters_are_refused_by_the_shared_rules(
        args: list[str], words: str) -> None:
    """The native contract's rule (schemas/request.v1.json), in Piston's 400 shape."""
    assert refused({**HELLO, "args": args}).startswith(words)


# -- limits ------------------------------------------------------------------------
def test_limits_absent_or_zero_are_the_server_defaults() -> None:
    for doc in (HELLO, {**HELLO, "run_timeout": 0, "run_memory_limit": None}):
        got = job(doc).request.limits
        assert (got.wall_ms, got.cpu_ms, got.memory_mb) == (None, None, None)


def test_limits_are_converted_from_pistons_units() -> None:
    got = job({**HELLO, "run_timeout": 1500, "run_cpu_time": 999.5,
               "run_memory_limit": 100_000_000}).request.limits
    assert (got.wall_ms, got.cpu_ms) == (1500, 1000)
    assert got.memory_mb == 96  # 95.4 MiB rounded up: never less than asked


def test_minus_one_is_the_server_maximum() -> None:
    # piston-client sends compile_memory_limit and run_memory_limit -1 by default.
    got = job({**HELLO, "run_timeout": -1, "run_cpu_time": -1, "run_memory_limit": -1,
               "compile_memory_limit": -1}).request.limits
    assert (got.wall_ms, got.cpu_ms, got.memory_mb) == (
        SETTINGS.max_wall_ms, SETTINGS.max_cpu_ms, SETTINGS.max_memory_mb)


@pytest.mark.parametrize(("field", "value", "sentence"), [
    ("run_timeout", "3000", "If specified, run_timeout must be a number"),
    ("run_timeout", True, "If specified, run_timeout must be a number"),
    ("compile_cpu_time", [1], "If specified, compile_cpu_time must be a number"),
    ("run_timeout", 30001, "run_timeout cannot exceed the configured limit of 30000"),
    ("run_memory_limit", 1024 * MIB + 1,
     f"run_memory_limit cannot exceed the configured limit of {1024 * MIB}"),
    ("compile_timeout", 20001, "compile_timeout cannot exceed the configured limit of 20000"),
    ("run_memory_limit", -2, "run_memory_limit must be non-negative"),
    ("run_cpu_time", -0.5, "run_cpu_time must be non-negative"),
])
def test_bad_limits_get_pistons_sentences(field: str, value: Any, sentence: str) -> None:
    assert refused({**HELLO, field: value}) == sentence


def test_compile_limits_within_the_servers_are_accepted_but_do_not_change_the_run() -> None:
    got = job({**HELLO, "compile_timeout": 5000, "compile_cpu_time": 5000}).request.limits
    assert (got.wall_ms, got.cpu_ms) == (None, None)


# -- results as Piston answers them --------------------------------------------------
def phase(**kw: Any) -> dict[str, Any]:
    base = {"stdout": "", "stderr": "", "encoding": "utf8", "exit_code": 0, "signal": None,
            "wall_ms": 30, "cpu_ms": 12, "memory_kb": 4000, "stdout_truncated": False,
            "stderr_truncated": False, "time_limit": None, "oom_killed": False}
    return base | kw


def result(status: str, run: dict[str, Any] | None = None,
           compile_: dict[str, Any] | None = None, message: str | None = None,
           version: str = "3.11.2") -> dict[str, Any]:
    return {"status": status, "message": message, "version": version, "run": run,
            "compile": compile_}


PY = job(HELLO)
C = job({"language": "gcc", "version": "*", "files": [{"content": "int main(){}"}]})


def test_an_ok_run_is_pistons_shape() -> None:
    status, body = render(result("ok", phase(stdout="hi\n")), PY)
    assert status == 200
    assert body == {"language": "python", "version": "3.11.2", "run": {
        "signal": None, "stdout": "hi\n", "stderr": "", "code": 0, "output": "hi\n",
        "memory": 4000 * 1024, "message": None, "status": None, "cpu_time": 12,
        "wall_time": 30}}
    assert list(body["run"]) == ["signal", "stdout", "stderr", "code", "output", "memory",
                                 "message", "status", "cpu_time", "wall_time"]


def test_output_is_stdout_then_stderr() -> None:
    _, body = render(result("runtime_error", phase(stdout="a\n", stderr="boom\n",
                                                   exit_code=1)), PY)
    run = body["run"]
    assert run["output"] == "a\nboom\n"
    assert (run["code"], run["signal"], run["status"]) == (1, None, "RE")
    assert run["message"] == "Exited with error status 1"


@pytest.mark.parametrize(("verdict", "fields", "status", "message"), [
    ("time_limit_exceeded", {"time_limit": "wall", "signal": "SIGKILL", "exit_code": None},
     "TO", "Time limit exceeded (wall clock)"),
    ("time_limit_exceeded", {"time_limit": "cpu", "signal": "SIGKILL", "exit_code": None},
     "TO", "Time limit exceeded"),
    ("output_limit_exceeded", {"stdout_truncated": True, "signal": "SIGKILL",
                               "exit_code": None}, "OL", "stdout length exceeded"),
    ("output_limit_exceeded", {"stderr_truncated": True, "signal": "SIGKILL",
                               "exit_code": None}, "EL", "stderr length exceeded"),
    ("memory_limit_exceeded", {"oom_killed": True, "signal": "SIGKILL", "exit_code": None},
     "SG", "Memory limit exceeded (killed by SIGKILL)"),
    ("runtime_error", {"signal": "SIGSEGV", "exit_code": None}, "SG", "Caught fatal signal 11"),
])
def test_stopped_runs_get_pistons_status_and_signal(verdict: str, fields: dict[str, Any],
                                                    status: str, message: str) -> None:
    code, body = render(result(verdict, phase(**fields)), PY)
    run = body["run"]
    assert code == 200
    assert (run["status"], run["message"], run["code"]) == (status, message, None)
    assert run["signal"] == ("SIGSEGV" if status == "SG" and "11" in message else "SIGKILL")


def test_a_compiled_language_has_a_compile_stage() -> None:
    _, body = render(result("ok", phase(stdout="1\n"), phase(), version="12.2.0-14"), C)
    assert body["language"] == "c" and body["version"] == "12.2.0"
    assert body["compile"]["code"] == 0 and body["run"]["stdout"] == "1\n"
    _, interpreted = render(result("ok", phase()), PY)
    assert "compile" not in interpreted


def test_a_failed_compile_is_copied_into_run() -> None:
    failed = phase(stderr="main.c:1: error: x\n", exit_code=1)
    _, body = render(result("compile_error", None, failed), C)
    assert body["run"] == body["compile"]
    assert (body["run"]["code"], body["run"]["status"]) == (1, "RE")
    assert body["run"]["output"] == "main.c:1: error: x\n"


def test_output_that_is_not_utf8_is_replaced_as_node_decodes_it() -> None:
    raw = phase(stdout=base64.b64encode(b"ok\xff\n").decode(), encoding="base64")
    _, body = render(result("ok", raw), PY)
    assert body["run"]["stdout"] == "ok\ufffd\n"


@pytest.mark.parametrize(("verdict", "http"), [
    ("rejected", 400), ("expired", 503), ("internal_error", 500), ("bogus", 500)])
def test_code_that_did_not_run_is_a_message(verdict: str, http: int) -> None:
    status, body = render(result(verdict, message="why"), PY)
    assert status == http and list(body) == ["message"] and "why" in body["message"]


# -- errors from the rest of runstream, in Piston's shape -----------------------------
@pytest.mark.parametrize(("exc", "status"), [
    (PistonRefusal("x", status=415), 415),
    (InvalidRequest("x"), 400),  # Piston says 400 where our native API says 422
    (LimitExceeded("x"), 400),
    (PayloadTooLarge("x"), 413),
    (BrokerUnavailable("x"), 503),
    (RunstreamError("x"), 500),
])
def test_errors_keep_their_meaning_in_pistons_shape(exc: RunstreamError, status: int) -> None:
    got, message, _ = errors.answer(exc)
    assert got == status
    assert message == ("x" if status != 500 else
                       "the service failed to handle this request; it is logged")


def test_overload_keeps_its_retry_after() -> None:
    assert errors.answer(Overloaded("busy", retry_after=3)) == (
        429, "busy", {"Retry-After": "3"})
