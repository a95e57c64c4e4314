"""The judging fields of a request and result on the wire: checkers, interactors, scores.

Requests: ``checker`` (a standard checker by name or object, or a checker
program), ``interactor``, ``stop_on_failure``, and per test ``checker``,
``points`` and ``group``. Results: per test ``score``, ``comment`` and
``judge`` (the checker's own run), and the request's ``score``, ``max_score``
and ``groups``. Every one is optional and absent unless used: older producers,
workers and readers see the documents they know (docs/judging.md).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from .errors import InvalidRequest
from .models import (
    ExecutionResult,
    PhaseResult,
    Program,
    RequestedLimits,
    SourceFile,
    StandardChecker,
    TestResult,
)


def standard_from_doc(value: str | dict[str, Any]) -> StandardChecker:
    """A validated standard checker: a name, or ``{"kind", "abs_error", "rel_error"}``."""
    if isinstance(value, str):
        return StandardChecker(kind=value)
    return StandardChecker(kind=value["kind"], abs_error=float(value.get("abs_error", 0.0)),
                           rel_error=float(value.get("rel_error", 0.0)))


def standard_to_doc(checker: StandardChecker) -> str | dict[str, Any]:
    if checker.kind != "floats":
        return checker.kind
    return {"kind": checker.kind, "abs_error": checker.abs_error,
            "rel_error": checker.rel_error}


def decode_file(where: str, index: int, item: dict[str, Any]) -> SourceFile:
    """One validated file item of ``where`` (e.g. "files", "checker.files")."""
    content: str = item["content"]
    if item.get("encoding", "utf8") != "base64":
        return SourceFile(name=item.get("name"), content=content.encode("utf-8", "surrogatepass"))
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as e:
        field = f"{where}.{index}.content"
        raise InvalidRequest(f"{field}: not valid base64 ({e})", field=field) from e
    return SourceFile(name=item.get("name"), content=data)


def decode_files(where: str, items: list[dict[str, Any]]) -> tuple[SourceFile, ...]:
    """Validated file items, refused when two have the same name."""
    files = tuple(decode_file(where, i, f) for i, f in enumerate(items))
    names = [f.name for f in files if f.name is not None]
    if len(names) != len(set(names)):
        raise InvalidRequest(f"{where}: two files have the same name", field=where)
    return files


def requested_limits(doc: dict[str, Any]) -> RequestedLimits:
    """The ``limits`` member of a validated document."""
    return RequestedLimits(**{k: v for k, v in doc.get("limits", {}).items()
                              if k in RequestedLimits.__slots__})


def files_to_doc(files: tuple[SourceFile, ...]) -> list[dict[str, Any]]:
    """Files as they travel on the topic: base64, whatever their bytes."""
    return [{**({"name": f.name} if f.name is not None else {}),
             "content": base64.b64encode(f.content).decode("ascii"),
             "encoding": "base64"} for f in files]


def limits_to_doc(doc: dict[str, Any], limits: RequestedLimits) -> None:
    """Add the asked limits to ``doc`` (absent when none was asked)."""
    asked = {k: getattr(limits, k) for k in RequestedLimits.__slots__}
    if any(v is not None for v in asked.values()):
        doc["limits"] = {k: v for k, v in asked.items() if v is not None}


def program_from_doc(where: str, doc: dict[str, Any]) -> Program:
    """A validated checker or interactor program (``where`` names its field)."""
    if ("source" in doc) == ("files" in doc):
        raise InvalidRequest(f"{where}: give the program as 'source' or 'files' (one of them)",
                             field=where)
    if "files" in doc:
        files = decode_files(f"{where}.files", doc["files"])
    else:
        files = (SourceFile(name=None, content=doc["source"].encode("utf-8", "surrogatepass")),)
    return Program(language=doc["language"].strip().lower(), files=files,
                   version=doc.get("version"), limits=requested_limits(doc))


def program_to_doc(program: Program) -> dict[str, Any]:
    doc: dict[str, Any] = {"language": program.language, "files": files_to_doc(program.files)}
    if program.version is not None:
        doc["version"] = program.version
    limits_to_doc(doc, program.limits)
    return doc


def judging_from_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """The request's judging fields, as ``ExecutionRequest`` keyword arguments."""
    found: dict[str, Any] = {}
    checker = doc.get("checker")
    if isinstance(checker, dict) and "language" in checker:
        found["checker_program"] = program_from_doc("checker", checker)
    elif checker is not None:
        found["checker"] = standard_from_doc(checker)
    if "interactor" in doc:
        if "checker_program" in found:
            raise InvalidRequest("interactor: give a checker program or an interactor, not "
                                 "both (the interactor's exit code is the verdict)",
                                 field="interactor")
        if not doc.get("tests"):
            raise InvalidRequest("interactor: give the inputs as tests (each test's stdin is "
                                 "the interactor's input file)", field="tests")
        if doc.get("interactive"):
            raise InvalidRequest("interactor: a live-stdin ('interactive') run cannot also "
                                 "have an interactor", field="interactor")
        found["interactor"] = program_from_doc("interactor", doc["interactor"])
    if doc.get("stop_on_failure"):
        found["stop_on_failure"] = True
    return found


def test_fields_from_doc(test: dict[str, Any]) -> dict[str, Any]:
    """A test's judging fields, as ``TestCase`` keyword arguments."""
    found: dict[str, Any] = {}
    if "checker" in test:
        found["checker"] = standard_from_doc(test["checker"])
    if "points" in test:
        found["points"] = float(test["points"])
    if "group" in test:
        found["group"] = test["group"]
    return found


def judging_to_doc(doc: dict[str, Any], checker: StandardChecker, program: Program | None,
                   interactor: Program | None, stop_on_failure: bool) -> None:
    """Add the request's judging fields to ``doc`` (absent when they are the defaults)."""
    if program is not None:
        doc["checker"] = program_to_doc(program)
    elif checker != StandardChecker():
        doc["checker"] = standard_to_doc(checker)
    if interactor is not None:
        doc["interactor"] = program_to_doc(interactor)
    if stop_on_failure:
        doc["stop_on_failure"] = True


def test_fields_to_doc(checker: StandardChecker | None, points: float | None,
                       group: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if checker is not None:
        doc["checker"] = standard_to_doc(checker)
    if points is not None:
        doc["points"] = points
    if group is not None:
        doc["group"] = group
    return doc


def test_result_extras(test: TestResult,
                       phase_doc: Callable[[PhaseResult], dict[str, Any]]) -> dict[str, Any]:
    """A test result's judging members (absent when unused)."""
    doc: dict[str, Any] = {}
    if test.score is not None:
        doc["score"] = test.score
    if test.comment is not None:
        doc["comment"] = test.comment
    if test.judge is not None:
        doc["judge"] = phase_doc(test.judge)
    return doc


def result_extras(result: ExecutionResult,
                  phase_doc: Callable[[PhaseResult], dict[str, Any]]) -> dict[str, Any]:
    """A result's judging members (absent when unused)."""
    doc: dict[str, Any] = {}
    if result.judge_compile is not None:
        doc["judge_compile"] = phase_doc(result.judge_compile)
    if result.score is not None:
        doc["score"] = result.score
        doc["max_score"] = result.max_score
    if result.groups is not None:
        doc["groups"] = [{"name": name, "score": earned, "max_score": possible}
                         for name, (earned, possible) in result.groups.items()]
    return doc
