"""A Judge0 submission (request side) -> a runstream ExecutionRequest.

Validation follows Judge0 1.13.1's model (``app/models/submission.rb``): a
missing or null attribute takes the default, an explicit 0 is kept, and every
problem is collected into Judge0's 422 errors hash (``{"field": ["message"]}``)
rather than stopping at the first. Limits are converted from Judge0's units
(seconds, KB) to runstream's (ms, MiB) and capped by this server's maxima.

The attributes Judge0 echoes back (source code, stdin, limits, ...) travel in
the request's ``metadata`` under ``"judge0"``: every result carries it, so any
ingress can render the submission from the stored result alone.
"""

from __future__ import annotations

import base64
import math
import re
import shlex
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from runstream.schemas.codec import request_from_doc
from runstream.schemas.errors import InvalidRequest
from runstream.schemas.models import ExecutionRequest
from runstream.services.execution.languages import Language
from runstream.services.ingress.judge0._b64 import decode64
from runstream.services.ingress.judge0.config import (
    MAX_CPU_EXTRA_TIME_S,
    MAX_RUNS,
    MAX_STACK_LIMIT_KB,
    MAX_TEXT_OPTION,
    STACK_LIMIT_KB,
    Judge0Config,
)
from runstream.services.ingress.judge0.errors import FieldErrors

META_KEY = "judge0"
# Judge0 strips these from arguments before handing them to bash.
_UNSAFE = re.compile(r"[$&;<>|`]")
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_INTEGER = re.compile(r"^\s*[+-]?\d+")
# Rails' boolean cast: these are false, nil/"" take the default, anything else is true.
_FALSE = {False, "0", "f", "F", "false", "FALSE", "False", "off", "OFF", "no", "NO"}
# The Judge0 attribute each field of the native request comes from.
_ATTRIBUTE = {"args": "command_line_arguments", "callback": "callback_url",
              "files": "source_code", "stdin": "stdin", "tests": "stdin",
              "language": "language_id", "version": "language_id"}


def _fmt(limit: float) -> str:
    return repr(float(limit)) if isinstance(limit, float) else str(limit)


class _Checker:
    """Reads attributes the way Rails casts them, collecting errors per field."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params
        self.errors: dict[str, list[str]] = {}

    def add(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def present(self, name: str) -> bool:
        return self.params.get(name) not in (None, "")

    def text(self, name: str) -> str | None:
        value = self.params.get(name)
        if value is None or isinstance(value, (list, dict)):
            return None  # Rails drops what is not a permitted scalar
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else str(value)

    def number(self, name: str, default: float, *, low: float, high: float,
               above_low: bool = False, integer: bool = False) -> float:
        value = self.params.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool) or not (
                isinstance(value, (int, float)) or (isinstance(value, str)
                                                    and _NUMBER.match(value))):
            self.add(name, "is not a number")
            return default
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            number = math.inf
        if not math.isfinite(number):
            self.add(name, "is not a number")
            return default
        if integer:
            number = float(int(number))  # an integer column keeps the whole part
        if above_low and number <= low:
            self.add(name, f"must be greater than {_fmt(low)}")
        elif not above_low and number < low:
            self.add(name, f"must be greater than or equal to {_fmt(low)}")
        elif number > high:
            self.add(name, f"must be less than or equal to {_fmt(high)}")
        return int(number) if integer else number

    def flag(self, name: str) -> bool:
        value = self.params.get(name)
        if value is None or value == "" or isinstance(value, (list, dict)):
            return False
        return value not in _FALSE


def _payload(check: _Checker, name: str, base64_encoded: bool) -> bytes | None:
    text = check.text(name)
    if text is None:
        return None
    return decode64(text) if base64_encoded else text.encode("utf-8", "surrogatepass")


def _as_text(check: _Checker, name: str, data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        check.add(name, "is not valid UTF-8 text (runstream passes it to the program as text)")
        return None


def _language(check: _Checker, index: Mapping[int, Language]) -> tuple[int | None,
                                                                         Language | None]:
    raw = check.params.get("language_id")
    if raw is None or raw == "" or isinstance(raw, (list, dict)):
        check.add("language_id", "can't be blank")
        return None, None
    if isinstance(raw, bool):
        lang_id = int(raw)
    elif isinstance(raw, (int, float)):
        lang_id = int(raw) if math.isfinite(raw) else 0
    else:
        match = _INTEGER.match(str(raw))
        lang_id = int(match.group(0)) if match else 0  # Rails' to_i
    lang = index.get(lang_id)
    if lang is None:
        check.add("language_id", f"language with id {lang_id} doesn't exist")
    return lang_id, lang


def _arguments(check: _Checker) -> tuple[str | None, list[str]]:
    raw = check.text("command_line_arguments")
    if raw is None:
        return None, []
    if len(raw) > MAX_TEXT_OPTION:
        check.add("command_line_arguments",
                  f"is too long (maximum is {MAX_TEXT_OPTION} characters)")
        return raw, []
    try:
        # Judge0 hands the stripped text to bash; shlex splits it as bash would.
        return raw, shlex.split(_UNSAFE.sub("", raw))
    except ValueError as e:
        check.add("command_line_arguments", f"cannot be split into arguments ({e})")
        return raw, []


def _callback(check: _Checker) -> str | None:
    url = check.text("callback_url")
    if url is None or url == "":
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2048:
        check.add("callback_url", "is not a valid http(s) URL")
    return url


def _refuse_unsupported(check: _Checker) -> None:
    if check.present("compiler_options"):
        opts = check.text("compiler_options") or ""
        if len(opts) > MAX_TEXT_OPTION:
            check.add("compiler_options",
                      f"is too long (maximum is {MAX_TEXT_OPTION} characters)")
        check.add("compiler_options", "setting compiler options is not allowed")
    if check.present("additional_files"):
        check.add("additional_files", "setting additional files is not allowed")
    if check.flag("enable_network"):
        check.add("enable_network", "enabling network is not allowed")
    for name in ("enable_per_process_and_thread_time_limit",
                 "enable_per_process_and_thread_memory_limit"):
        if check.flag(name):
            check.add(name, "this option cannot be enabled")
    if check.flag("redirect_stderr_to_stdout"):
        check.add("redirect_stderr_to_stdout", "is not supported by this server")


def build_request(params: Mapping[str, Any], token: str, *, base64_encoded: bool,
                  languages: Mapping[int, Language], config: Judge0Config) -> ExecutionRequest:
    """The runstream request for one Judge0 submission, or FieldErrors (422).

    ``params`` are the submission's attributes (the body merged over the query),
    ``token`` becomes the execution id.
    """
    check = _Checker(params)
    lang_id, lang = _language(check, languages)
    source = _payload(check, "source_code", base64_encoded)
    if source is None or not source.strip():
        check.add("source_code", "can't be blank")
    stdin = _as_text(check, "stdin", _payload(check, "stdin", base64_encoded))
    expected = _payload(check, "expected_output", base64_encoded)
    expected_text = _as_text(check, "expected_output", expected)
    c = config
    cpu = check.number("cpu_time_limit", c.cpu_time_limit, low=0, high=c.max_cpu_time_limit)
    extra = check.number("cpu_extra_time", 0.0, low=0, high=MAX_CPU_EXTRA_TIME_S)
    wall = check.number("wall_time_limit", c.wall_time_limit, low=1,
                        high=c.max_wall_time_limit)
    memory = check.number("memory_limit", c.memory_limit, low=2048, high=c.max_memory_limit,
                          integer=True)
    stack = check.number("stack_limit", STACK_LIMIT_KB, low=0, high=MAX_STACK_LIMIT_KB,
                         integer=True)
    procs = check.number("max_processes_and_or_threads", c.max_processes_and_or_threads,
                         low=0, high=c.max_max_processes_and_or_threads, above_low=True,
                         integer=True)
    file_size = check.number("max_file_size", c.max_file_size, low=0,
                             high=c.max_max_file_size, integer=True)
    runs = check.number("number_of_runs", 1, low=0, high=MAX_RUNS, above_low=True,
                        integer=True)
    args_text, args = _arguments(check)
    callback_url = _callback(check)
    _refuse_unsupported(check)
    if check.errors:
        raise FieldErrors(check.errors)
    assert lang is not None and source is not None and lang_id is not None
    echo = {
        "language_id": lang_id,
        "source_code": base64.b64encode(source).decode("ascii"),
        "stdin": base64.b64encode(stdin.encode()).decode("ascii") if stdin is not None else None,
        "expected_output": (base64.b64encode(expected).decode("ascii")
                            if expected is not None else None),
        "number_of_runs": int(runs),
        "cpu_time_limit": float(cpu),
        "cpu_extra_time": float(extra),
        "wall_time_limit": float(wall),
        "memory_limit": int(memory),
        "stack_limit": int(stack),
        "max_processes_and_or_threads": int(procs),
        "max_file_size": int(file_size),
        "command_line_arguments": args_text,
        "callback_url": callback_url,
    }
    doc: dict[str, Any] = {
        "id": token,
        "language": lang.name,
        "files": [{"content": echo["source_code"], "encoding": "base64"}],
        "args": args,
        "limits": {
            "wall_ms": max(1, round(wall * 1000)),
            "cpu_ms": max(1, min(round((cpu + extra) * 1000),
                                 round(c.max_cpu_time_limit * 1000))),
            "memory_mb": max(1, math.ceil(int(memory) / 1024)),
            "processes": int(procs),
            "file_size_kb": int(file_size),
        },
        "metadata": {META_KEY: echo},
    }
    if int(runs) > 1 or expected_text is not None:
        # Each run is a test: compiled once, every run judged (Judge0 reports the
        # first run that is not Accepted, and the mean time and memory).
        test = {"stdin": stdin or ""}
        if expected_text is not None:
            test["expected_output"] = expected_text
        doc["tests"] = [test] * int(runs)
    elif stdin:
        doc["stdin"] = stdin
    if callback_url is not None:
        doc["callback"] = {"url": callback_url, "method": "PUT", "format": "judge0"}
    try:
        return request_from_doc(doc)
    except InvalidRequest as e:
        # The native contract's rules (a NUL in an argument, a control character in
        # the callback URL) told in Judge0's shape, under the attribute they came from.
        raise FieldErrors({_attribute(e.field): [_without_field(e.message, e.field)]}) from e


def _attribute(field: str | None) -> str:
    top = (field or "").split(".", 1)[0]
    return _ATTRIBUTE.get(top, top or "base")


def _without_field(message: str, field: str | None) -> str:
    # Judge0's messages follow the attribute's name: "contains ...", not "args.0: ...".
    prefix = f"{field}: "
    return message[len(prefix):] if field and message.startswith(prefix) else message
