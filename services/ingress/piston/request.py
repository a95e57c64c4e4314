"""``POST /api/v2/execute`` bodies: parsed, checked as Piston checks them, made a request.

Piston accepts only ``Content-Type: application/json``. Two popular clients do not
send it (``compat/judge0-piston.md`` C.10): npm's ``piston-client`` posts JSON with
no content type (node-fetch labels it ``text/plain;charset=UTF-8``) and PyPI's
``pistonapi`` posts a form (``files`` being the code itself). Both are accepted
here; any other content type gets Piston's 415.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson
from runstream.schemas.codec import check_request, new_execution_id
from runstream.schemas.errors import InvalidRequest
from runstream.schemas.models import ExecutionRequest, SourceFile
from runstream.services.ingress.piston import limits
from runstream.services.ingress.piston.errors import PistonRefusal
from runstream.services.ingress.piston.runtimes import Runtime, pinned, select

JSON_TYPES = ("application/json", "text/plain", "")
FORM = "application/x-www-form-urlencoded"
UNSUPPORTED_TYPE = "requests must be of type application/json"

# What the request schema (schemas/request.v1.json) lets a worker accept.
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_MAX_FILES = 64
_MAX_ARGS = 64
_MAX_ARG_CHARS = 4096
_FORM_NUMBERS = frozenset(limits.NAMES)
# The schema's pattern for language and version: no C0, DEL or C1 control character.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class PistonJob:
    """A checked execute request: the runtime it chose and the request to run."""

    runtime: Runtime
    request: ExecutionRequest


def body_kind(content_type: str | None) -> str:
    """``"json"`` or ``"form"`` for a Content-Type header; PistonRefusal 415 otherwise."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == FORM:
        return "form"
    if media in JSON_TYPES or media.startswith("application/json"):
        return "json"
    raise PistonRefusal(UNSUPPORTED_TYPE, status=415)


def parse_body(body: bytes, kind: str) -> dict[str, Any]:
    """The body as Piston's ``req.body``: a JSON object, or a form read as one."""
    if kind == "form":
        return _from_form(body)
    try:
        doc = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as e:
        raise PistonRefusal(f"the body is not valid JSON: {e}") from e
    # body-parser hands an array through; its fields are then all missing.
    return doc if isinstance(doc, dict) else {}


def _from_form(body: bytes) -> dict[str, Any]:
    try:
        pairs = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                         max_num_fields=4 * (_MAX_FILES + _MAX_ARGS))
    except (UnicodeDecodeError, ValueError) as e:
        raise PistonRefusal(f"the form body cannot be read: {e}") from e
    doc: dict[str, Any] = {key: values[-1] for key, values in pairs.items()}
    # pistonapi sends each file as its content (files=<code>), v1-style.
    if "files" in pairs:
        doc["files"] = [{"content": content} for content in pairs["files"]]
    if "args" in pairs:
        doc["args"] = pairs["args"]
    for name in _FORM_NUMBERS & pairs.keys():  # a form has no numbers: read them
        doc[name] = _form_number(doc[name])
    return doc


def _form_number(text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return text  # refused as "must be a number" with the others
    return int(number) if number.is_integer() else number


def build(doc: dict[str, Any], available: Sequence[Runtime],
          ceilings: limits.Ceilings) -> PistonJob:
    """Check ``doc`` in Piston's order and with Piston's sentences; the job to run."""
    language, version, files = doc.get("language"), doc.get("version"), doc.get("files")
    if not language or not isinstance(language, str):
        raise PistonRefusal("language is required as a string")
    if not version or not isinstance(version, str):
        raise PistonRefusal("version is required as a string")
    if not isinstance(files, list):
        raise PistonRefusal("files is required as an array")
    for i, item in enumerate(files):
        if not isinstance(item, dict) or not isinstance(item.get("content"), str):
            raise PistonRefusal(f"files[{i}].content is required as a string")
    _plain(language, version)
    runtime = select(available, language, version)
    if not any(_encoding(item) == "utf8" for item in files):
        raise PistonRefusal("files must include at least one utf8 encoded file")
    checked = limits.check(doc, ceilings)
    request = ExecutionRequest(
        id=new_execution_id(),
        language=runtime.lang.name,
        version=pinned(available, runtime, version),
        files=_files(files),
        stdin=_stdin(doc.get("stdin")),
        args=_args(doc.get("args")),
        limits=limits.requested(checked),
    )
    try:
        check_request(request)  # the native contract's rules (no NUL in an argument, ...)
    except InvalidRequest as e:
        raise PistonRefusal(e.message) from e
    return PistonJob(runtime, request)


def _plain(language: str, version: str) -> None:
    """Refuse a control character in the client's own language or version.

    The request carries the chosen runtime's name, not the client's string, and the
    runtime lookup trims whitespace: without this, ``"python\\n"`` would run where the
    native API and the requests topic refuse it. The message is the native contract's,
    naming the field and the character (not echoing it, as "runtime is unknown" would).
    """
    if _CONTROL.search(language) or _CONTROL.search(version):
        try:
            check_request(ExecutionRequest(id="-", language=language, version=version,
                                           files=(SourceFile(None, b""),)))
        except InvalidRequest as e:
            raise PistonRefusal(e.message) from e


def _encoding(item: dict[str, Any]) -> str:
    # Piston: anything but base64 or hex is utf8 (api/src/job.js).
    encoding = item.get("encoding")
    return encoding if encoding in ("base64", "hex") else "utf8"


def _files(items: list[dict[str, Any]]) -> tuple[SourceFile, ...]:
    """The files, the first utf8 one first: Piston runs the first utf8 file."""
    if len(items) > _MAX_FILES:
        raise PistonRefusal(f"files: at most {_MAX_FILES} files")
    entry = next(i for i, item in enumerate(items) if _encoding(item) == "utf8")
    order = [entry, *(i for i in range(len(items)) if i != entry)]
    files = tuple(_file(i, items[i], is_entry=i == entry) for i in order)
    names = [f.name for f in files if f.name is not None]
    if len(names) != len(set(names)):
        raise PistonRefusal("files: two files have the same name")
    return files


def _file(i: int, item: dict[str, Any], *, is_entry: bool) -> SourceFile:
    content: str = item["content"]
    encoding = _encoding(item)
    try:
        if encoding == "base64":
            data = base64.b64decode(content, validate=True)
        elif encoding == "hex":
            data = bytes.fromhex(content)
        else:
            data = content.encode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError) as e:
        raise PistonRefusal(f"files[{i}].content is not valid {encoding}: {e}") from e
    name = item.get("name")
    if name is None or name == "":
        # The entry file gets the language's own name (main.c, Main.java...) where
        # Piston's is file0.code: our compilers go by the extension.
        return SourceFile(name=None if is_entry else f"file{i}.code", content=data)
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
        raise PistonRefusal(f"files[{i}].name must be a plain file name (letters, digits, "
                            "'.', '_', '-'; no directories, not starting with a dot)")
    return SourceFile(name=name, content=data)


def _stdin(value: Any) -> bytes:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise PistonRefusal("stdin must be a string")
    # Piston appends a newline when the input does not end with one (api/src/job.js).
    return (value if value.endswith("\n") else value + "\n").encode("utf-8", "surrogatepass")


def _args(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise PistonRefusal("args must be an array of strings")
    if len(value) > _MAX_ARGS or any(len(a) > _MAX_ARG_CHARS for a in value):
        raise PistonRefusal(f"args: at most {_MAX_ARGS} arguments of {_MAX_ARG_CHARS} "
                            "characters each")
    return tuple(value)
