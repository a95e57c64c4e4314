"""What an execution tells while it runs: the seam between the executor and live events.

The executor knows nothing of Kafka: the worker hands it a :class:`Progress`
(``streams/event_publisher.py`` publishes it as events). Every call must return at once
and never raise; a lost progress report is acceptable, a delayed run is not.
"""

from __future__ import annotations

from typing import Protocol

from runstream.schemas.models import Limits, PhaseResult, TestResult
from runstream.services.execution.languages import Language
from runstream.services.execution.sandbox.base import PhaseOutput

COMPILE = "compile"
RUN = "run"


class Progress(Protocol):
    """Told the steps of one execution as they happen."""

    def started(self, language: Language, limits: Limits) -> None:
        """A worker took the execution and will run it in ``language`` under ``limits``."""
        ...

    def output(self, phase: str, test: int | None) -> PhaseOutput:
        """The sink of a phase's output (``phase`` compile or run; ``test`` its index)."""
        ...

    def phase_ended(self, phase: str, test: int | None, result: PhaseResult | None) -> None:
        """The phase's output is complete; ``result`` None if it did not end normally."""
        ...

    def compiled(self, result: PhaseResult, *, failed: bool) -> None:
        """The compile step ended."""
        ...

    def tested(self, result: TestResult) -> None:
        """A test was run and judged (its verdict, score and comment)."""
        ...
