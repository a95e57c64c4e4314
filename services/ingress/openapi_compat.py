"""The Judge0 (``/judge0``) and Piston (``/api/v2``) operations of ``/openapi.json``.

Added to ``OPERATIONS`` by :mod:`.openapi_paths`. Their bodies are Judge0's and
Piston's wire shapes, not contracts of ours (those projects define them), so
their schemas are here rather than in ``schemas/``: each says what our routes
answer (``judge0/wire.py``, ``judge0/catalog.py``, ``judge0/config.py``,
``piston/response.py``, ``piston/runtimes.py``), including where it differs from
the original. Errors are Judge0's and Piston's own bodies (``judge0/errors.py``,
``piston/errors.py``); on ``/judge0`` the ingress's own refusals (overload, a
body too large, malformed JSON, the broker) stay problem+json.
"""

from __future__ import annotations

from typing import Any

from runstream.services.ingress.openapi import (
    JSON,
    PROBLEM,
    TEXT,
    Operation,
    Reply,
    problem,
    ref,
)

FORM = "application/x-www-form-urlencoded"
_RETRY = ("Retry-After",)
_NULLABLE_TEXT = {"type": ["string", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


# -- Judge0 CE 1.13.1 ----------------------------------------------------------------------

_J0_STATUS = _object(["id", "description"], id={"type": "integer", "minimum": 1,
                                                 "maximum": 14},
                     description={"type": "string"})
_J0_LIMIT_S = {"type": ["number", "string", "null"],
               "description": "Seconds (a number, or a string Rails casts)."}
_J0_LIMIT_KB = {"type": ["integer", "string", "null"]}
_J0_FLAG = {"type": ["boolean", "string", "null"]}

JUDGE0_SCHEMAS: dict[str, Any] = {
    "Judge0SubmissionRequest": {
        "type": "object", "required": ["source_code", "language_id"],
        "description": "A Judge0 submission (app/models/submission.rb). Text is base64 with "
                       "?base64_encoded=true. Refused with 422: compiler_options, "
                       "additional_files, enable_network, per-process limits, "
                       "redirect_stderr_to_stdout (docs/judge0.md).",
        "properties": {
            "source_code": {"type": "string"},
            "language_id": {"type": ["integer", "string"],
                            "description": "A Judge0 id of a served language "
                                           "(GET /judge0/languages)."},
            "stdin": _NULLABLE_TEXT, "expected_output": _NULLABLE_TEXT,
            "cpu_time_limit": _J0_LIMIT_S, "cpu_extra_time": _J0_LIMIT_S,
            "wall_time_limit": _J0_LIMIT_S, "memory_limit": _J0_LIMIT_KB,
            "stack_limit": _J0_LIMIT_KB, "max_processes_and_or_threads": _J0_LIMIT_KB,
            "max_file_size": _J0_LIMIT_KB, "number_of_runs": _J0_LIMIT_KB,
            "command_line_arguments": _NULLABLE_TEXT, "callback_url": _NULLABLE_TEXT,
            "compiler_options": _NULLABLE_TEXT, "additional_files": _NULLABLE_TEXT,
            "enable_network": _J0_FLAG, "redirect_stderr_to_stdout": _J0_FLAG,
            "enable_per_process_and_thread_time_limit": _J0_FLAG,
            "enable_per_process_and_thread_memory_limit": _J0_FLAG}},
    "Judge0Submission": {
        "type": "object", "additionalProperties": False,
        "description": "A submission as Judge0 1.13.1 serialises it: the attributes `fields` "
                       "names (default: stdout, time, memory, stderr, token, compile_output, "
                       "message, status; `*`: all), nothing else (the official SDK refuses "
                       "other keys). Text is base64 (60-character lines) with "
                       "base64_encoded=true. Not finished: status 1 (In Queue), the rest null.",
        "properties": {
            **{name: _NULLABLE_TEXT for name in (
                "source_code", "stdin", "expected_output", "stdout", "stderr",
                "compile_output", "message", "created_at", "finished_at", "compiler_options",
                "command_line_arguments", "callback_url", "additional_files")},
            "time": {"type": ["string", "null"], "description": "CPU seconds, e.g. \"0.012\"."},
            "wall_time": {"type": ["string", "null"]},
            **{name: {"type": ["string", "null"], "description": "Seconds, as Judge0 echoes "
                      "a decimal column."}
               for name in ("cpu_time_limit", "cpu_extra_time", "wall_time_limit")},
            **{name: _NULLABLE_INT for name in (
                "language_id", "status_id", "memory", "number_of_runs", "memory_limit",
                "stack_limit", "max_processes_and_or_threads", "max_file_size", "exit_code",
                "exit_signal")},
            **{name: {"type": ["boolean", "null"]} for name in (
                "enable_per_process_and_thread_time_limit",
                "enable_per_process_and_thread_memory_limit", "redirect_stderr_to_stdout",
                "enable_network")},
            "token": {"type": "string"},
            "status": _J0_STATUS,
            "language": {"oneOf": [{"type": "null"}, _object(
                ["id", "name"], id={"type": "integer"}, name={"type": "string"})]}}},
    "Judge0Token": {**_object(["token"], token={"type": "string"}),
                    "additionalProperties": False},
    "Judge0TokenNotUtf8": {
        **_object(["token", "error"], token={"type": "string"}, error={"type": "string"}),
        "description": "wait=true: created, but its text is not UTF-8 (ask with "
                       "base64_encoded=true)."},
    "Judge0Error": {**_object(["error"], error={"type": "string"}),
                    "description": "Judge0's 400: bad `fields`, batch size, text that needs "
                                   "base64."},
    "Judge0FieldErrors": {
        "type": "object", "minProperties": 1,
        "description": "Judge0's 422: attribute -> its errors, e.g. "
                       "{\"language_id\": [\"can't be blank\"]}.",
        "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    "Judge0NotFound": _object(["status", "error"], status={"const": 404},
                              error={"const": "Not Found"}),
    "Judge0Status": _J0_STATUS,
    "Judge0Language": {**_object(["id", "name"], id={"type": "integer"},
                                 name={"type": "string"},
                                 is_archived={"type": "boolean",
                                              "description": "/languages/all only."})},
    "Judge0LanguageDetail": _object(
        ["id", "name", "is_archived", "source_file", "compile_cmd", "run_cmd"],
        id={"type": "integer"}, name={"type": "string"}, is_archived={"type": "boolean"},
        source_file={"type": "string"}, compile_cmd=_NULLABLE_TEXT, run_cmd={"type": "string"}),
    "Judge0About": _object(["version"], version={"const": "1.13.1"},
                           homepage={"type": "string"}, source_code={"type": "string"},
                           maintainer={"type": "string"}),
    "Judge0ConfigInfo": {
        "type": "object", "description": "Judge0's 39 keys, with this server's limits "
                                         "(seconds, KB).",
        "required": [
            "maintenance_mode", "enable_wait_result", "enable_compiler_options",
            "allowed_languages_for_compile_options", "enable_command_line_arguments",
            "enable_submission_delete", "enable_callbacks", "callbacks_max_tries",
            "callbacks_timeout", "enable_additional_files", "max_queue_size",
            "cpu_time_limit", "max_cpu_time_limit", "cpu_extra_time", "max_cpu_extra_time",
            "wall_time_limit", "max_wall_time_limit", "memory_limit", "max_memory_limit",
            "stack_limit", "max_stack_limit", "max_processes_and_or_threads",
            "max_max_processes_and_or_threads", "enable_per_process_and_thread_time_limit",
            "allow_enable_per_process_and_thread_time_limit",
            "enable_per_process_and_thread_memory_limit",
            "allow_enable_per_process_and_thread_memory_limit", "max_file_size",
            "max_max_file_size", "number_of_runs", "max_number_of_runs",
            "redirect_stderr_to_stdout", "max_extract_size", "enable_batched_submissions",
            "max_submission_batch_size", "submission_cache_duration", "use_docs_as_homepage",
            "allow_enable_network", "enable_network"],
        "additionalProperties": {"type": ["boolean", "number", "array"]}},
    "Judge0Worker": _object(
        ["queue", "size", "available", "idle", "working", "paused", "failed"],
        queue={"type": "string"},
        **{k: {"type": "integer", "minimum": 0}
           for k in ("size", "available", "idle", "working", "paused", "failed")}),
}

_B64 = {"name": "base64_encoded", "in": "query", "required": False,
        "description": "`true`: every text attribute is base64, in and out.",
        "schema": {"type": "string"}}
_FIELDS = {"name": "fields", "in": "query", "required": False,
           "description": "Comma-separated attributes to answer, or `*`; an unknown one is "
                          "400.", "schema": {"type": "string"}}
_J0_WAIT = {"name": "wait", "in": "query", "required": False,
            "description": "`true`: answer the submission when finished (up to "
                           "RUNSTREAM_INGRESS_WAIT_S, then In Queue); else only its token.",
            "schema": {"type": "string"}}
_TOKEN = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "A submission token (the execution id)."}
_TOKENS = {"name": "tokens", "in": "query", "required": True,
           "description": "Comma-separated tokens, 20 at most.", "schema": {"type": "string"}}

_J0_ERROR = {JSON: ref("Judge0Error")}
_J0_BAD = Reply(400, "Judge0's `{\"error\"}` (bad `fields`, batch size, text that needs "
                "base64), or problem+json for a body that is not a JSON object.",
                {JSON: ref("Judge0Error"), PROBLEM: ref("ProblemV1")})
_J0_NOT_FOUND = Reply(404, "Unknown token (or past its retention and pending window).",
                      {JSON: ref("Judge0NotFound")})
_TOO_LARGE = problem(413, "The body is over RUNSTREAM_INGRESS_MAX_BODY_BYTES.")
_OVERLOADED = problem(429, "Overloaded: retry after Retry-After.", _RETRY)
_BROKER = problem(503, "Kafka did not answer in time, or this ingress is stopping.", _RETRY)
_READ_FAILED = problem(503, "The results could not be read from Kafka in time.")
_NO_AUTH_TOKEN = Reply(403, "Always, with no body: a Judge0 with no authorization token "
                       "configured answers so (the submission list and DELETE need one).")


def _j0(method: str, path: str, op_id: str, summary: str, replies: tuple[Reply, ...],
        **kw: Any) -> Operation:
    return Operation(method, "/judge0" + path, op_id, summary, replies, tag="judge0", **kw)


def _j0_get(path: str, op_id: str, summary: str, body: dict[str, Any],
            **kw: Any) -> Operation:
    return _j0("GET", path, op_id, summary, (Reply(200, summary + ".", {JSON: body}),), **kw)


JUDGE0: tuple[Operation, ...] = (
    _j0("GET", "/", "judge0Root", "Judge0's home (empty)", (Reply(200, "No body."),)),
    _j0("POST", "/submissions", "judge0CreateSubmission", "Create a submission",
        description="Judge0's POST /submissions: JSON or a form. Without wait=true the "
                    "answer is its token at once; with it, the submission once finished.",
        parameters=(_J0_WAIT, _B64, _FIELDS),
        body={JSON: ref("Judge0SubmissionRequest"), FORM: ref("Judge0SubmissionRequest")},
        body_description="A Judge0 submission.",
        body_example={"source_code": "print(6*7)", "language_id": 71},
        replies=(
            Reply(201, "Created: its token, or (wait=true) the submission.",
                  {JSON: {"anyOf": [ref("Judge0Token"), ref("Judge0Submission"),
                                    ref("Judge0TokenNotUtf8")]}}),
            _J0_BAD, _TOO_LARGE,
            Reply(422, "Judge0's field errors, or problem+json when the native contract "
                  "refuses what Judge0's checks let through.",
                  {JSON: ref("Judge0FieldErrors"), PROBLEM: ref("ProblemV1")}),
            _OVERLOADED, _BROKER)),
    _j0("GET", "/submissions", "judge0ListSubmissions", "List submissions (refused)",
        (_NO_AUTH_TOKEN,)),
    _j0("POST", "/submissions/batch", "judge0CreateBatch", "Create up to 20 submissions",
        parameters=(_B64,),
        body={JSON: _object(["submissions"], submissions={
            "type": "array", "minItems": 1, "maxItems": 20,
            "items": ref("Judge0SubmissionRequest")})},
        body_description="{\"submissions\": [...]}",
        body_example={"submissions": [{"source_code": "print(1)", "language_id": 71}]},
        replies=(
            Reply(201, "One entry per submission: its token, or its field errors.",
                  {JSON: {"type": "array", "items": {"anyOf": [
                      ref("Judge0Token"), ref("Judge0FieldErrors")]}}}),
            _J0_BAD, _TOO_LARGE,
            Reply(422, "No submission was valid: each one's field errors.",
                  {JSON: {"type": "array", "items": ref("Judge0FieldErrors")}}),
            _OVERLOADED, _BROKER)),
    _j0("GET", "/submissions/batch", "judge0GetBatch", "Up to 20 submissions by token",
        parameters=(_TOKENS, _B64, _FIELDS),
        replies=(
            Reply(200, "One entry per token; null for an unknown one.",
                  {JSON: _object(["submissions"], submissions={
                      "type": "array", "items": {"anyOf": [
                          {"type": "null"}, ref("Judge0Submission")]}})}),
            Reply(400, "No token, more than 20, bad `fields`, or text that needs base64.",
                  _J0_ERROR),
            _READ_FAILED)),
    _j0("GET", "/submissions/{token}", "judge0GetSubmission", "A submission by token",
        parameters=(_TOKEN, _B64, _FIELDS),
        replies=(Reply(200, "The submission (In Queue until finished).",
                       {JSON: ref("Judge0Submission")}),
                 Reply(400, "Bad `fields`, or text that needs base64.", _J0_ERROR),
                 _J0_NOT_FOUND, _READ_FAILED)),
    _j0("DELETE", "/submissions/{token}", "judge0DeleteSubmission",
        "Delete a submission (refused)", (_NO_AUTH_TOKEN,), parameters=(_TOKEN,)),
    _j0_get("/statuses", "judge0Statuses", "Judge0's statuses",
            {"type": "array", "items": ref("Judge0Status")}),
    _j0_get("/languages", "judge0Languages", "Languages by Judge0 id",
            {"type": "array", "items": ref("Judge0Language")}),
    _j0_get("/languages/all", "judge0LanguagesAll", "Languages with is_archived",
            {"type": "array", "items": ref("Judge0Language")}),
    _j0("GET", "/languages/{id}", "judge0Language", "One language by Judge0 id",
        parameters=({"name": "id", "in": "path", "required": True,
                     "schema": {"type": "string"}, "example": "71"},),
        replies=(Reply(200, "The language and its commands.",
                       {JSON: ref("Judge0LanguageDetail")}),
                 Reply(404, "Not a Judge0 id of ours.", {JSON: ref("Judge0NotFound")}))),
    _j0_get("/about", "judge0About", "Version (1.13.1: the SDK picks its ids by it)",
            ref("Judge0About")),
    _j0("GET", "/version", "judge0Version", "Version, as text",
        (Reply(200, "1.13.1", {TEXT: {"const": "1.13.1"}}),)),
    _j0_get("/config_info", "judge0ConfigInfo", "Configuration, Judge0's 39 keys",
            ref("Judge0ConfigInfo")),
    _j0_get("/system_info", "judge0SystemInfo", "The ingress host (lscpu, free rows)",
            {"type": "object", "additionalProperties": {"type": "string"}}),
    _j0_get("/workers", "judge0Workers", "The worker group as Judge0's queue",
            {"type": "array", "items": ref("Judge0Worker")}),
    _j0("POST", "/authenticate", "judge0Authenticate", "Check the key (X-Auth-Token)",
        (Reply(200, "No body: authenticated (or API keys are off)."),)),
    _j0("POST", "/authorize", "judge0Authorize", "Authorize (refused)", (_NO_AUTH_TOKEN,)),
)

# -- Piston v2 -----------------------------------------------------------------------------

_P_LIMIT = {"type": "integer", "minimum": -1}
_P_STAGE = {
    "type": "object",
    "required": ["signal", "stdout", "stderr", "code", "output", "memory", "message",
                 "status", "cpu_time", "wall_time"],
    "properties": {
        "signal": _NULLABLE_TEXT, "stdout": {"type": "string"}, "stderr": {"type": "string"},
        "code": _NULLABLE_INT,
        "output": {"type": "string", "description": "stdout followed by stderr."},
        "memory": {"type": ["integer", "null"], "description": "Bytes."},
        "message": _NULLABLE_TEXT,
        "status": {"enum": ["RE", "SG", "TO", "OL", "EL", None]},
        "cpu_time": {"type": ["integer", "null"], "description": "ms."},
        "wall_time": {"type": ["integer", "null"], "description": "ms."}}}

PISTON_SCHEMAS: dict[str, Any] = {
    "PistonExecute": {
        "type": "object", "required": ["language", "version", "files"],
        "properties": {
            "language": {"type": "string"},
            "version": {"type": "string", "description": "A semver range: *, 3.x, ^3.10, ..."},
            "files": {"type": "array", "items": _object(
                ["content"], name={"type": "string"}, content={"type": "string"},
                encoding={"enum": ["utf8", "base64", "hex"]})},
            "stdin": {"type": "string"},
            "args": {"type": "array", "items": {"type": "string"}},
            **{name: _P_LIMIT for name in (
                "compile_timeout", "run_timeout", "compile_cpu_time", "run_cpu_time",
                "compile_memory_limit", "run_memory_limit")}}},
    "PistonExecuteForm": {
        "type": "object", "description": "pistonapi's form: `files` is the code itself.",
        "properties": {"language": {"type": "string"}, "version": {"type": "string"},
                       "files": {"type": "string"}, "stdin": {"type": "string"},
                       "args": {"type": "string"}}},
    "PistonStage": _P_STAGE,
    "PistonResult": _object(["language", "version", "run"], language={"type": "string"},
                            version={"type": "string"}, run=ref("PistonStage"),
                            compile=ref("PistonStage")),
    "PistonMessage": _object(["message"], message={"type": "string"}),
    "PistonRuntime": _object(["language", "version", "aliases"], language={"type": "string"},
                             version={"type": "string"},
                             aliases={"type": "array", "items": {"type": "string"}},
                             runtime={"type": "string"}),
    "PistonPackage": _object(["language", "language_version", "installed"],
                             language={"type": "string"},
                             language_version={"type": "string"},
                             installed={"const": True}),
}

_MESSAGE = {JSON: ref("PistonMessage")}


def _p(method: str, path: str, op_id: str, summary: str, replies: tuple[Reply, ...],
       **kw: Any) -> Operation:
    return Operation(method, "/api/v2" + path, op_id, summary, replies, tag="piston", **kw)


PISTON: tuple[Operation, ...] = (
    _p("GET", "/runtimes", "pistonRuntimes", "Languages and versions live workers serve",
       (Reply(200, "One entry per (language, version).",
              {JSON: {"type": "array", "items": ref("PistonRuntime")}}),)),
    _p("POST", "/execute", "pistonExecute", "Run a program, Piston's way",
       description="Piston v2's execute; every answer is Piston's JSON, errors "
                   "`{\"message\"}` (docs/piston.md). JSON may come as "
                   "text/plain or with no type; the form is pistonapi's.",
       body={JSON: ref("PistonExecute"), TEXT: {"type": "string"},
             FORM: ref("PistonExecuteForm")},
       body_description="Piston's execute request.",
       body_example={"language": "python", "version": "*",
                     "files": [{"name": "main.py", "content": "print(6*7)"}]},
       replies=(
           Reply(200, "It ran (whatever its verdict).", {JSON: ref("PistonResult")}),
           Reply(400, "Piston's refusal sentence (unknown runtime, a field, a limit above "
                 "this server's), or code a worker refused.", _MESSAGE),
           Reply(413, "The body is over RUNSTREAM_INGRESS_MAX_BODY_BYTES.", _MESSAGE),
           Reply(415, "Not JSON, text/plain or a form.", _MESSAGE),
           Reply(429, "Overloaded: retry after Retry-After.", _MESSAGE, _RETRY),
           Reply(500, "The sandbox failed (not the program).", _MESSAGE),
           Reply(503, "No result in time, waited past its deadline, Kafka unavailable or "
                 "the ingress stopping.", _MESSAGE, _RETRY))),
    _p("GET", "/packages", "pistonPackages", "Installed runtimes",
       (Reply(200, "Every served runtime, installed.",
              {JSON: {"type": "array", "items": ref("PistonPackage")}}),)),
    _p("POST", "/packages", "pistonInstall", "Install a package (refused)",
       (Reply(405, "Languages come with the deployment.", _MESSAGE, ("Allow",)),)),
    _p("DELETE", "/packages", "pistonUninstall", "Remove a package (refused)",
       (Reply(405, "Languages come with the deployment.", _MESSAGE, ("Allow",)),)),
    _p("GET", "/connect", "pistonConnect", "Run a program interactively (WebSocket)",
       description="Piston v2's interactive WebSocket (docs/piston.md): the "
                   "client sends `{\"type\":\"init\", ...the execute fields...}` within 1 s, "
                   "then `{\"type\":\"data\",\"stream\":\"stdin\",\"data\"}`, "
                   "`{\"type\":\"signal\",\"signal\":\"SIGINT\"}` and runstream's "
                   "`{\"type\":\"eof\"}`; the server sends `runtime` (with the execution "
                   "`id`), `stage`, `data` (stdout, stderr) and `exit` frames as the program "
                   "runs, `{\"type\":\"error\",\"message\"}` before a close 4002, and "
                   "closes 4999 when the program ended. Close codes 4000 Already "
                   "Initialized, 4001 Initialization Timeout, 4003 Not yet initialized, "
                   "4004 Can only write to stdin, 4005 Invalid signal. Closing the socket "
                   "kills the program. API keys as on every route (one rate-limit token per "
                   "connection; the run counts against the key's concurrency quota).",
       replies=(
           Reply(101, "A WebSocket handshake: the session runs over the socket."),
           Reply(426, "A plain HTTP request, not a WebSocket handshake.", _MESSAGE,
                 ("Upgrade",)))),
)

HEADERS: dict[str, Any] = {
    "Allow": {"description": "The methods the path answers.", "schema": {"type": "string"}},
    "Upgrade": {"description": "The protocol the path speaks.",
                "schema": {"const": "websocket"}},
}
SCHEMAS: dict[str, Any] = {**JUDGE0_SCHEMAS, **PISTON_SCHEMAS}
OPERATIONS: tuple[Operation, ...] = (*JUDGE0, *PISTON)
TAGS = (
    {"name": "judge0", "description": "Judge0 CE 1.13.1's API under /judge0 "
                                      "(docs/judge0.md)."},
    {"name": "piston", "description": "Piston v2's API under /api/v2 "
                                      "(docs/piston.md)."},
)
