"""Live stdin, the pure parts: the wire (stdin.v1.json, the request's ``interactive``),
the worker's per-id buffer (bounds, expiry, repeats), the item-to-input mapping, and
how a phase is fed (services/execution/sandbox/supervision.py: feed_live)."""

from __future__ import annotations

import asyncio
import signal
from collections import deque

import orjson
import pytest
from runstream.schemas.codec import decode_request, encode_request
from runstream.schemas.errors import InvalidRequest
from runstream.schemas.stdin import (
    MAX_DATA_BYTES,
    SIGNALS,
    InvalidStdin,
    StdinKind,
    StdinMessage,
    data_items,
    decode_stdin,
    encode_stdin,
    stdin_doc,
    validate_stdin_doc,
)
from runstream.services.execution.sandbox import supervision
from runstream.services.execution.sandbox.base import Input
from runstream.services.execution.sandbox.supervision import feed_live, signal_number
from runstream.streams.stdinbuffer import ENTRY_OVERHEAD, ITEM_OVERHEAD, StdinBuffers
from runstream.streams.stdinfeed import as_input

# -- the wire --------------------------------------------------------------------


@pytest.mark.parametrize("msg", [
    StdinMessage("x", 0, StdinKind.DATA, b"line\n"),
    StdinMessage("x", 1, StdinKind.DATA, b"\xff\x00bin"),
    StdinMessage("x", 2, StdinKind.EOF),
    StdinMessage("x", 3, StdinKind.SIGNAL, signal="SIGRTMIN+3"),
    StdinMessage("x", 4, StdinKind.HANGUP),
])
def test_messages_round_trip_and_match_their_schema(msg: StdinMessage) -> None:
    validate_stdin_doc(stdin_doc(msg))
    assert decode_stdin(encode_stdin(msg)) == msg


@pytest.mark.parametrize("doc", [
    {"schema": "runstream.stdin.v1", "id": "x", "seq": 0, "type": "data"},
    {"schema": "runstream.stdin.v1", "id": "x", "seq": -1, "type": "eof"},
    {"schema": "runstream.stdin.v1", "id": "", "seq": 0, "type": "eof"},
    {"schema": "runstream.stdin.v1", "id": "x", "seq": 0, "type": "write"},
    {"schema": "runstream.stdin.v1", "id": "x", "seq": 0, "type": "signal"},
    {"schema": "runstream.stdin.v1", "id": "x", "seq": 0, "type": "signal", "signal": "SIGX"},
    {"schema": "runstream.stdin.v1", "id": "x", "seq": 0, "type": "data", "data": "@@",
     "encoding": "base64"},
    {"schema": "runstream.event.v1", "id": "x", "seq": 0, "type": "eof"},
])
def test_what_is_not_a_message_is_refused(doc: dict[str, object]) -> None:
    with pytest.raises(InvalidStdin):
        decode_stdin(orjson.dumps(doc))
    if doc["schema"] == "runstream.stdin.v1" and doc.get("signal") != "SIGX" and doc.get(
            "data") != "@@":
        with pytest.raises(InvalidStdin):  # the schema file says the same
            validate_stdin_doc(doc)
    with pytest.raises(InvalidStdin):
        decode_stdin(b"not json")


def test_long_input_travels_as_several_items_in_order() -> None:
    data = bytes(range(256)) * 600  # 150 KiB
    items = data_items("x", 7, data)
    assert [i.seq for i in items] == [7, 8, 9]
    assert all(len(i.data) <= MAX_DATA_BYTES for i in items)
    assert b"".join(i.data for i in items) == data
    assert data_items("x", 0, b"") == []


def test_the_request_says_interactive_and_older_documents_do_not() -> None:
    base = {"id": "i1", "language": "python", "source": "print(input())"}
    req = decode_request(orjson.dumps({**base, "interactive": True}))
    assert req.interactive
    assert orjson.loads(encode_request(req))["interactive"] is True
    plain = decode_request(orjson.dumps(base))
    assert not plain.interactive and "interactive" not in orjson.loads(encode_request(plain))
    with pytest.raises(InvalidRequest) as e:
        decode_request(orjson.dumps({**base, "interactive": True, "tests": [{"stdin": "1"}]}))
    assert e.value.field == "tests"
    with pytest.raises(InvalidRequest) as e:
        decode_request(orjson.dumps({**base, "interactive": True, "stdin": "given"}))
    assert e.value.field == "stdin"
    with pytest.raises(InvalidRequest):
        decode_request(orjson.dumps({**base, "interactive": "yes"}))


def test_signal_names_and_numbers() -> None:
    assert len(SIGNALS) == 62 and len(set(SIGNALS)) == 62
    assert signal_number("SIGINT") == signal.SIGINT
    assert signal_number("SIGKILL") == 9
    assert signal_number("SIGRTMIN") == signal.SIGRTMIN
    assert signal_number("SIGRTMIN+3") == signal.SIGRTMIN + 3
    assert signal_number("SIGRTMAX-1") == signal.SIGRTMAX - 1
    assert signal_number("SIGFOO") is None and signal_number("SIGRTMAX+1") is None
    assert all(signal_number(name) is not None for name in SIGNALS)


def test_items_become_the_sandboxs_input() -> None:
    assert as_input(StdinMessage("x", 0, StdinKind.DATA, b"a")) == Input(data=b"a")
    assert as_input(StdinMessage("x", 0, StdinKind.EOF)) == Input(eof=True)
    assert as_input(StdinMessage("x", 0, StdinKind.SIGNAL, signal="SIGINT")) == Input(
        signal="SIGINT")
    # The client is gone: the program is killed and its stdin ends.
    assert as_input(StdinMessage("x", 0, StdinKind.HANGUP)) == Input(signal="SIGKILL",
                                                                     eof=True)


# -- the worker's buffer ----------------------------------------------------------

def data(exec_id: str, seq: int, size: int) -> StdinMessage:
    return StdinMessage(exec_id, seq, StdinKind.DATA, b"x" * size)


def test_items_wait_for_their_run_in_order_and_repeats_are_dropped() -> None:
    buf = StdinBuffers(max_bytes=1 << 20, per_id_bytes=1 << 16, ttl_s=60)
    assert buf.add(data("a", 0, 3), now=0) and buf.add(data("a", 1, 4), now=0)
    assert not buf.add(data("a", 1, 4), now=0)  # a producer's retry
    assert buf.add(StdinMessage("a", 2, StdinKind.EOF), now=0)
    assert [m.seq for m in buf.take("a")] == [0, 1, 2]
    assert buf.take("a") == [] and buf.take("unknown") == []
    assert buf.size == ENTRY_OVERHEAD  # what was taken is given up


def test_one_id_holds_at_most_its_bound_of_data_not_taken() -> None:
    buf = StdinBuffers(max_bytes=1 << 20, per_id_bytes=100, ttl_s=60)
    assert buf.add(data("a", 0, 100 - ITEM_OVERHEAD), now=0)
    assert not buf.add(data("a", 1, 1), now=0)  # over the bound: dropped
    assert buf.add(StdinMessage("a", 2, StdinKind.HANGUP), now=0)  # control still kept
    assert buf.dropped_of("a") == 1 and buf.hung_up("a")
    buf.take("a")
    assert buf.add(data("a", 3, 100 - ITEM_OVERHEAD), now=0)  # taken input frees the bound


def test_ids_nobody_runs_expire_and_the_oldest_go_first_when_full() -> None:
    buf = StdinBuffers(max_bytes=3 * (ENTRY_OVERHEAD + ITEM_OVERHEAD + 10), per_id_bytes=1000,
                       ttl_s=60)
    buf.add(data("old", 0, 10), now=0)
    buf.watch("running", now=0)
    buf.add(data("running", 0, 10), now=0)
    buf.add(data("new", 0, 10), now=30)
    buf.expire(now=61)
    assert "old" not in buf and "running" in buf and "new" in buf  # watched: kept
    buf.add(data("old", 1, 10), now=62)
    buf.add(data("newer", 0, 10), now=63)  # over max_bytes: "new" (least recent) goes
    assert "new" not in buf and "running" in buf and "newer" in buf
    buf.unwatch("running")
    assert "running" not in buf


# -- feeding a phase ---------------------------------------------------------------

class Script:
    """A LiveInput giving scripted items, then waiting forever."""

    def __init__(self, *items: Input) -> None:
        self.items = deque(items)
        self.more = asyncio.Event()

    async def get(self) -> Input:
        while not self.items:
            self.more.clear()
            await self.more.wait()
        return self.items.popleft()


async def test_data_then_eof_in_order_and_signals_are_not_held_back_by_unread_input() -> None:
    live = Script(Input(data=b"one\n"), Input(data=b"two\n"), Input(signal="SIGINT"),
                  Input(eof=True))
    log: list[object] = []
    reading = asyncio.Event()  # the program reads only once the signal went out

    async def write(chunk: bytes) -> None:
        await reading.wait()
        log.append(chunk)

    ended = asyncio.Event()

    async def end() -> None:
        log.append("eof")
        ended.set()

    async def send_signal(number: int) -> None:
        log.append(number)
        reading.set()

    feeding = asyncio.create_task(feed_live(live, write=write, end=end,
                                            send_signal=send_signal))
    async with asyncio.timeout(5):
        await ended.wait()
    assert log == [signal.SIGINT, b"one\n", b"two\n", "eof"]
    feeding.cancel()
    with pytest.raises(asyncio.CancelledError):
        await feeding


async def test_input_a_program_never_reads_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervision, "MAX_PENDING_INPUT", 10)
    live = Script(*(Input(data=b"x" * 4) for _ in range(5)), Input(signal="SIGKILL"))
    blocked = asyncio.Event()
    killed = asyncio.Event()
    written: list[bytes] = []

    async def write(chunk: bytes) -> None:
        written.append(chunk)
        blocked.set()
        await asyncio.Event().wait()  # the program never reads

    async def end() -> None:
        raise AssertionError("no eof was sent")

    async def send_signal(number: int) -> None:
        assert number == signal.SIGKILL
        killed.set()

    feeding = asyncio.create_task(feed_live(live, write=write, end=end,
                                            send_signal=send_signal))
    async with asyncio.timeout(5):
        await killed.wait()  # the kill gets through although the input is stuck
        await blocked.wait()
    feeding.cancel()
    await asyncio.gather(feeding, return_exceptions=True)
    assert written == [b"xxxx"]  # one stuck in the pipe, one held, the other three dropped
