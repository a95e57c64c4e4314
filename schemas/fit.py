"""Make an encoded result fit one Kafka message: trim outputs, never fail.

A result that does not fit the broker's message size cannot be published, and
an unpublished result is a lost answer. Outputs are what can be large (eight
tests writing a MiB each to both streams; bytes that JSON escapes six-fold), so
they are trimmed, largest first, until the encoded result fits; each trimmed
stream has its ``*_truncated`` flag set and the result says why. The verdict,
decided on the full output before this, is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from .codec import encode_result
from .models import ExecutionResult, PhaseResult

TRIMMED_NOTE = "output trimmed to fit the largest result message"
_ROUNDS = 12


@dataclass
class _Stream:
    phase: PhaseResult
    name: str  # "stdout" or "stderr"

    @property
    def data(self) -> bytes:
        data: bytes = getattr(self.phase, self.name)
        return data

    def cut(self, size: int) -> None:
        if len(self.data) <= size:
            return
        setattr(self.phase, self.name, _utf8_prefix(self.data, size))
        setattr(self.phase, f"{self.name}_truncated", True)


def _utf8_prefix(data: bytes, size: int) -> bytes:
    """``data[:size]``, backed off so a UTF-8 character is not cut in half.

    A cut character would make the phase's output invalid UTF-8, and the codec
    then base64-encodes it, a third larger.
    """
    head = data[:size]
    for back in range(min(4, len(head)) + 1):
        candidate = head[: len(head) - back]
        try:
            candidate[-4:].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return candidate
    return head


def _streams(result: ExecutionResult) -> list[_Stream]:
    phases = [p for p in (result.compile, result.run, result.judge_compile) if p is not None]
    phases += [t.run for t in result.tests]
    phases += [t.judge for t in result.tests if t.judge is not None]
    return [_Stream(p, name) for p in phases for name in ("stdout", "stderr")]


def _budgets(sizes: list[int], total: int) -> list[int]:
    """Water-filling: streams under the fair share keep their size, the rest share the rest."""
    budgets = [0] * len(sizes)
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    left, remaining = total, len(sizes)
    for i in order:
        share = left // remaining if remaining else 0
        budgets[i] = min(sizes[i], share)
        left -= budgets[i]
        remaining -= 1
    return budgets


def _bare_size(result: ExecutionResult, streams: list[_Stream]) -> int:
    """Size of the encoded result with every output empty."""
    kept = [s.data for s in streams]
    for s in streams:
        setattr(s.phase, s.name, b"")
    try:
        return len(encode_result(result))
    finally:
        for s, data in zip(streams, kept, strict=True):
            setattr(s.phase, s.name, data)


def fit_result(result: ExecutionResult, max_bytes: int) -> bytes:
    """The encoded result, with outputs trimmed in place until it is at most ``max_bytes``."""
    payload = encode_result(result)
    if len(payload) <= max_bytes:
        return payload
    streams = _streams(result)
    if result.message is None:
        result.message = TRIMMED_NOTE
    elif TRIMMED_NOTE not in result.message:
        result.message = f"{result.message}; {TRIMMED_NOTE}"
    bare = _bare_size(result, streams)
    for _ in range(_ROUNDS):
        sizes = [len(s.data) for s in streams]
        raw = sum(sizes)
        if raw == 0 or bare >= max_bytes:
            break
        # Bytes of JSON per byte of output, measured rather than guessed: escapes
        # and base64 make it anywhere from 1 to 6.
        ratio = max(1.0, (len(payload) - bare) / raw)
        target = int((max_bytes - bare) / ratio * 0.95)
        for stream, budget in zip(streams, _budgets(sizes, max(0, target)), strict=True):
            stream.cut(budget)
        payload = encode_result(result)
        if len(payload) <= max_bytes:
            return payload
    for stream in streams:
        stream.cut(0)
    return encode_result(result)
