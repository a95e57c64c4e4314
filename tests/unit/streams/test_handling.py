"""The worker's message handling, in-process: a real Executor, a scripted sandbox, a fake broker.

Each test drives ``Handler.handle`` with one delivery and checks what was
written where, and whether the offset may be committed. The broker is faked
here because these are the handler's decisions; tests/chaos and tests/e2e run
the same paths against a real Kafka and real sandboxes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import orjson
import pytest
from runstream.schemas.errors import BrokerUnavailable
from runstream.schemas.models import Limits, PhaseResult, ReplyTo
from runstream.services.errors import SandboxError
from runstream.services.execution.executor import SANDBOX_MESSAGE, Executor
from runstream.services.execution.languages import Language, Registry
from runstream.services.settings import Settings
from runstream.streams.handling import INTERNAL_MESSAGE, Delivery, Handler
from runstream.streams.publish import PermanentPublishError

SETTINGS = Settings.from_env({}, worker_id="w-test", message_max_bytes=2 * 1024 * 1024,
                             max_output_kb=1024)
MIB = 1024 * 1024


class ScriptedWorkspace:
    """Runs 'programs' written as ``verb:arg``: echo, big (bytes of \\x01), sleep, boom."""

    def __init__(self, source: bytes, gate: asyncio.Event | None,
                 entered: asyncio.Event) -> None:
        self.source = source.decode()
        self.gate = gate
        self.entered = entered

    async def run(self, argv: Sequence[str], *, stdin: bytes, limits: Limits,
                  language: Language) -> PhaseResult:
        verb, _, arg = self.source.partition(":")
        if verb == "wait" and self.gate is not None:
            self.entered.set()
            await asyncio.wait_for(self.gate.wait(), 10)
        if verb == "boom":
            raise RuntimeError("a bug in the sandbox layer")
        if verb == "sandbox-fails":
            raise SandboxError("cannot create the workspace /run/runstream/w4242-1-ab/x: "
                               "[Errno 28] No space left on device: b'/run'")
        if verb == "big":
            return PhaseResult(stdout=b"\x01" * int(arg), stderr=b"\x01" * int(arg),
                               exit_code=0)
        return PhaseResult(stdout=arg.encode(), exit_code=0)


class ScriptedSandbox:
    name = "scripted"

    def __init__(self) -> None:
        self.runs = 0
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def detect_versions(self, registry: Iterable[Language]) -> dict[str, str | None]:
        return {lang.name: "1" for lang in registry}

    @contextlib.asynccontextmanager
    async def workspace(self, exec_id: str, files: list[tuple[str, bytes]],
                        language: Language) -> AsyncIterator[ScriptedWorkspace]:
        self.runs += 1
        yield ScriptedWorkspace(files[0][1], self.gate, self.entered)


class Meta:
    def __init__(self, partition: int, offset: int) -> None:
        self.partition, self.offset = partition, offset


class FakePublisher:
    """Records what would be written; topics in ``broken`` fail permanently."""

    def __init__(self, topics: set[str], broken: set[str] | None = None) -> None:
        self.topics = topics
        self.broken = broken or set()
        self.sent: list[tuple[str, bytes | None, bytes, dict[str, bytes]]] = []

    async def check_reply_to(self, reply_to: ReplyTo) -> str | None:
        return None if reply_to.topic in self.topics else f"no topic {reply_to.topic!r}"

    async def send(self, topic: str, key: bytes | None, value: bytes, *,
                   partition: int | None = None, headers: Any = None, what: str = "") -> Meta:
        if topic in self.broken:
            raise PermanentPublishError(f"{topic}: refused")
        self.sent.append((topic, key, value, dict(headers or [])))
        return Meta(0, len(self.sent))

    def to(self, topic: str) -> list[dict[str, Any]]:
        return [orjson.loads(v) for t, _, v, _ in self.sent if t == topic]


class FakeAnswers:
    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}
        self.unreadable = 0  # lookups that fail before one succeeds
        self.in_topic: dict[str, bytes] = {}  # stored by another worker: not in the cache
        self.gate: asyncio.Event | None = None  # lookups wait for it (the store catching up)

    def cached(self, exec_id: str) -> bytes | None:
        return self.stored.get(exec_id)

    async def get(self, exec_id: str, *, timeout_s: float, exact: bool = False) -> bytes | None:
        if self.gate is not None:
            await self.gate.wait()
        if self.unreadable:  # a broker node down: the results topic cannot be read yet
            self.unreadable -= 1
            raise BrokerUnavailable("the results topic's leader is moving")
        return self.stored.get(exec_id) or self.in_topic.get(exec_id)

    def note(self, exec_id: str, value: bytes, partition: int | None = None,
             offset: int | None = None) -> None:
        self.stored[exec_id] = value


def _handler(*, served: Iterable[str] = ("python", "ruby"), broken: set[str] | None = None,
             ) -> tuple[Handler, FakePublisher, ScriptedSandbox, FakeAnswers]:
    catalogue = Registry.load()
    registry = Registry([lang for lang in catalogue if lang.name in served]).with_versions(
        {name: "1" for name in served})
    sandbox = ScriptedSandbox()
    publisher = FakePublisher({"mine"}, broken)
    answers = FakeAnswers()
    executor = Executor(SETTINGS, registry, sandbox)  # type: ignore[arg-type]
    handler = Handler(SETTINGS, executor, publisher, answers, catalogue)  # type: ignore[arg-type]
    return handler, publisher, sandbox, answers


def _delivery(doc: dict[str, Any] | bytes, key: bytes | None = b"id-1", *, offset: int = 7,
              topic: str = SETTINGS.requests_topic, redelivery: bool = False) -> Delivery:
    value = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    return Delivery(topic=topic, partition=3, offset=offset, key=key, value=value,
                    timestamp_ms=1_700_000_000_000, redelivery=redelivery)


async def _handle(handler: Handler, d: Delivery) -> tuple[bool, int]:
    released = 0

    def release() -> None:
        nonlocal released
        released += 1

    ok = await handler.handle(d, release)
    return ok, released


RESULTS = SETTINGS.results_topic


async def test_a_run_is_stored_then_replied_and_its_offset_may_be_committed() -> None:
    handler, pub, sandbox, answers = _handler()
    ok, released = await _handle(handler, _delivery(
        {"language": "python", "source": "echo:hi", "reply_to": {"topic": "mine"}}))
    assert ok and released >= 1 and sandbox.runs == 1
    assert [t for t, *_ in pub.sent] == [RESULTS, "mine"]  # stored before replied
    assert pub.to(RESULTS)[0]["run"]["stdout"] == "hi"
    assert "id-1" in answers.stored


async def test_a_reply_topic_that_does_not_exist_is_rejected_at_intake_not_retried() -> None:
    handler, pub, sandbox, _ = _handler()
    ok, _ = await _handle(handler, _delivery(
        {"language": "python", "source": "echo:hi", "reply_to": {"topic": "nowhere"}}))
    assert ok and sandbox.runs == 0
    [result] = pub.to(RESULTS)
    assert result["status"] == "rejected" and "nowhere" in result["message"]
    assert [t for t, *_ in pub.sent] == [RESULTS]


async def test_a_result_too_large_for_a_message_is_trimmed_not_an_internal_error() -> None:
    handler, pub, _, _ = _handler()
    tests = [{"stdin": ""}] * 8
    ok, _ = await _handle(handler, _delivery(
        {"language": "python", "source": f"big:{MIB}", "tests": tests}))
    assert ok
    [(_, _, payload, _)] = pub.sent
    assert len(payload) <= SETTINGS.message_max_bytes
    doc = orjson.loads(payload)
    assert doc["status"] == "ok"
    assert all(t["run"]["stdout_truncated"] for t in doc["tests"])


async def test_an_id_answered_before_is_not_run_again_and_its_result_is_resent() -> None:
    handler, pub, sandbox, answers = _handler()
    answers.stored["id-1"] = b'{"id":"id-1","status":"ok"}'
    ok, _ = await _handle(handler, _delivery(
        {"language": "python", "source": "echo:again", "reply_to": {"topic": "mine"}},
        redelivery=True))
    assert ok and sandbox.runs == 0
    assert pub.sent == [("mine", b"id-1", b'{"id":"id-1","status":"ok"}', {})]


async def test_a_redelivery_is_not_run_while_the_results_cannot_be_read() -> None:
    # A broker node down: the results topic's leaders move, the new owner of a moved
    # partition cannot read the results yet. It asks again instead of running the
    # request a second time (the cluster's Kafka-node fault ran 2 requests twice).
    handler, pub, sandbox, answers = _handler()
    answers.in_topic["id-1"] = b'{"id":"id-1","status":"ok"}'
    answers.unreadable = 2
    ok, _ = await _handle(handler, _delivery(
        {"language": "python", "source": "echo:again", "reply_to": {"topic": "mine"}},
        redelivery=True))
    assert ok and sandbox.runs == 0 and answers.unreadable == 0
    assert pub.sent == [("mine", b"id-1", b'{"id":"id-1","status":"ok"}', {})]


async def test_two_deliveries_of_an_id_run_once_while_the_store_is_asked() -> None:
    # A client's retry during a broker restart produced the id twice; after the
    # restart both records come back as re-deliveries, and the first still asks the
    # store (unreadable for a while) when the second arrives. The chaos suite's
    # broker-restart row saw both run, 1 ms apart, on one worker.
    handler, pub, sandbox, answers = _handler()
    answers.gate = asyncio.Event()  # the store has not caught up yet
    sandbox.gate = asyncio.Event()  # the run goes on until the test lets it end
    doc = {"language": "python", "source": "wait:", "reply_to": {"topic": "mine"}}
    first = asyncio.create_task(_handle(handler, _delivery(doc, offset=1, redelivery=True)))
    second = asyncio.create_task(_handle(handler, _delivery(doc, offset=2, redelivery=True)))
    await asyncio.sleep(0.05)  # both delivered: no event to await inside the handler
    answers.gate.set()  # the store answers "not stored" to whoever asks
    await asyncio.wait_for(sandbox.entered.wait(), 5)
    await asyncio.sleep(0.05)  # the second's turn, while the first still runs
    sandbox.gate.set()
    (ok1, _), (ok2, _) = await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert ok1 and ok2 and sandbox.runs == 1
    # One answer on the reply topic: the second delivery joined the first's run, whose
    # reply to that same reply_to had gone out already.
    assert len([1 for topic, *_ in pub.sent if topic == "mine"]) == 1


async def test_a_redelivery_runs_once_the_results_stayed_unreadable_too_long() -> None:
    handler, _, sandbox, answers = _handler()
    handler.settings = dataclasses.replace(SETTINGS, worker_redelivery_check_s=0.0)
    answers.unreadable = 1
    ok, _ = await _handle(handler, _delivery(
        {"language": "python", "source": "echo:ran", "reply_to": {"topic": "mine"}},
        redelivery=True))
    assert ok and sandbox.runs == 1


async def test_a_duplicate_while_the_first_runs_waits_for_it_and_is_not_run_twice() -> None:
    handler, pub, sandbox, _ = _handler()
    sandbox.gate = asyncio.Event()
    doc = {"language": "python", "source": "wait:", "reply_to": {"topic": "mine"}}
    first = asyncio.create_task(_handle(handler, _delivery(doc, offset=1)))
    await asyncio.wait_for(sandbox.entered.wait(), 5)
    second = asyncio.create_task(_handle(handler, _delivery(doc, offset=2)))
    # Its offset must not be committed before the first's result is stored.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(second), 0.1)
    sandbox.gate.set()
    assert (await first)[0] and (await second)[0]
    assert sandbox.runs == 1
    # The same request twice (a producer's retry) is answered once.
    assert [t for t, *_ in pub.sent] == [RESULTS, "mine"]


async def test_a_record_that_is_not_json_and_has_no_key_goes_to_the_dead_letters() -> None:
    handler, pub, _, _ = _handler()
    ok, _ = await _handle(handler, _delivery(b"{not json", key=None))
    assert ok
    [(topic, _, value, headers)] = pub.sent
    assert topic == SETTINGS.dead_letter_topic and value == b"{not json"
    assert b"not a request" in headers["reason"] and headers["offset"] == b"7"


async def test_an_invalid_request_with_a_key_is_answered_rejected_under_that_key() -> None:
    handler, pub, _, _ = _handler()
    ok, _ = await _handle(handler, _delivery({"language": 3, "source": "x"}, key=b"k-9"))
    assert ok
    [result] = pub.to(RESULTS)
    assert result["id"] == "k-9" and result["status"] == "rejected"
    assert "language" in result["message"]


async def test_a_keyless_request_gets_an_id_from_its_position_the_same_every_time() -> None:
    handler, pub, _, _ = _handler()
    doc = {"language": "python", "source": "echo:x"}
    await _handle(handler, _delivery(doc, key=None, offset=41))
    [result] = pub.to(RESULTS)
    assert result["id"] == f"{SETTINGS.requests_topic}-3-41"


async def test_when_the_result_cannot_be_stored_at_all_the_record_is_dead_lettered() -> None:
    handler, pub, _, _ = _handler(broken={RESULTS})
    ok, _ = await _handle(handler, _delivery({"language": "python", "source": "echo:x"}))
    assert ok  # the partition moves on
    [(topic, key, _, headers)] = pub.sent
    assert topic == SETTINGS.dead_letter_topic and key == b"id-1"
    assert b"could not be stored" in headers["reason"]


async def test_a_failure_inside_the_worker_is_an_internal_error_answer(
        caplog: pytest.LogCaptureFixture) -> None:
    handler, pub, _, _ = _handler()
    with caplog.at_level("ERROR", logger="runstream.streams.handling"):
        ok, _ = await _handle(handler, _delivery({"language": "python", "source": "boom:"}))
    assert ok
    [result] = pub.to(RESULTS)
    assert result["status"] == "internal_error"
    # The client is not shown the exception (issue 23: "ValueError('embedded null byte')");
    # the worker's log has it, with the execution id.
    assert result["message"] == INTERNAL_MESSAGE
    assert "RuntimeError" not in result["message"] and "bug" not in result["message"]
    [record] = [r for r in caplog.records if "failed inside the worker" in r.getMessage()]
    assert "id=id-1" in record.getMessage() and record.exc_info is not None
    assert "a bug in the sandbox layer" in str(record.exc_info[1])


async def test_a_failure_of_the_sandbox_is_an_internal_error_without_its_host_details(
        caplog: pytest.LogCaptureFixture) -> None:
    handler, pub, _, _ = _handler()
    with caplog.at_level("ERROR", logger="runstream.services.execution.executor"):
        ok, _ = await _handle(handler, _delivery({"language": "python",
                                                  "source": "sandbox-fails:"}))
    assert ok
    [result] = pub.to(RESULTS)
    assert (result["status"], result["message"]) == ("internal_error", SANDBOX_MESSAGE)
    # The sandbox's words name host paths, the worker's pid, an errno: the log has them.
    [record] = [r for r in caplog.records if "sandbox failure" in r.getMessage()]
    assert "id-1" in record.getMessage() and record.exc_info is not None
    assert "/run/runstream/w4242" in str(record.exc_info[1])


async def test_a_language_this_worker_does_not_run_is_forwarded_to_its_own_topic() -> None:
    handler, pub, sandbox, _ = _handler(served=("python",))
    d = _delivery({"language": "rb", "source": "echo:x"})
    ok, _ = await _handle(handler, d)
    assert ok and sandbox.runs == 0
    [(topic, key, value, headers)] = pub.sent
    assert topic == f"{SETTINGS.requests_topic}.ruby" and key == b"id-1" and value == d.value
    assert headers["forwarded-by"] == b"w-test"


@pytest.mark.parametrize("language", ["cobol-2099"])
async def test_a_language_nobody_runs_is_rejected_not_forwarded(language: str) -> None:
    handler, pub, _, _ = _handler()
    await _handle(handler, _delivery({"language": language, "source": "x"}))
    [result] = pub.to(RESULTS)
    assert result["status"] == "rejected" and "not supported" in result["message"]


async def test_a_reply_that_fails_after_the_result_was_stored_never_becomes_internal_error(
) -> None:
    handler, pub, _, _ = _handler(broken={"mine"})  # the reply topic refuses the record
    ok, _ = await _handle(handler, _delivery(
        {"language": "python", "source": "echo:fine", "reply_to": {"topic": "mine"}}))
    assert ok
    results = pub.to(RESULTS)
    assert [r["status"] for r in results] == ["ok"]  # stored once, and good
    assert [t for t, *_ in pub.sent] == [RESULTS]


async def test_a_duplicate_for_another_requester_gets_the_stored_answer_too() -> None:
    handler, pub, sandbox, _ = _handler()
    pub.topics.add("theirs")
    doc = {"language": "python", "source": "echo:x", "reply_to": {"topic": "mine"}}
    await _handle(handler, _delivery(doc, offset=1))
    await _handle(handler, _delivery(doc, offset=2))  # a retry: not answered again
    await _handle(handler, _delivery({**doc, "reply_to": {"topic": "theirs"}}, offset=3))
    assert sandbox.runs == 1
    assert [t for t, *_ in pub.sent] == [RESULTS, "mine", "theirs"]
    assert pub.sent[1][2] == pub.sent[2][2]  # the same document, byte for byte


async def test_a_result_whose_partition_moved_is_not_published_nor_committed() -> None:
    # The agent says the delivery is no longer this worker's (the group dropped the
    # worker while it ran; another worker runs the request): nothing is published.
    handler, pub, sandbox, answers = _handler()

    async def moved(d: Delivery) -> bool:
        return False

    handler.owns = moved
    ok, released = await _handle(handler, _delivery(
        {"language": "python", "source": "echo:hi", "reply_to": {"topic": "mine"}}))
    assert not ok and released >= 1 and sandbox.runs == 1
    assert pub.sent == [] and answers.stored == {}
    assert "id-1" not in handler.running


async def test_a_duplicate_waiting_on_a_run_whose_partition_moved_runs_it_itself() -> None:
    # After a rejoin the same record is delivered again while the first run (of the
    # old membership) still goes on; that run's result is dropped, so the new
    # delivery must answer, not wait for nothing.
    handler, pub, sandbox, _ = _handler()
    sandbox.gate = asyncio.Event()
    first_offsets = {1}

    async def owns(d: Delivery) -> bool:
        return d.offset not in first_offsets

    handler.owns = owns
    doc = {"language": "python", "source": "wait:", "reply_to": {"topic": "mine"}}
    first = asyncio.create_task(_handle(handler, _delivery(doc, offset=1)))
    await asyncio.wait_for(sandbox.entered.wait(), 5)
    second = asyncio.create_task(_handle(handler, _delivery(doc, offset=2)))
    await asyncio.sleep(0.05)  # the second is waiting on the first: nothing to await
    assert sandbox.runs == 1
    sandbox.gate.set()
    (ok1, _), (ok2, _) = await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert not ok1 and ok2 and sandbox.runs == 2
    assert len(pub.to(RESULTS)) == 1 and len(pub.to("mine")) == 1
