"""A run's record on Kafka: topic ``runstream.bench.<run-id>``, one partition, in order.

Records (JSON values; keys in brackets):

* [``manifest``] ``{"kind": "manifest", ...}``: the run's manifest (always first);
* [id] ``{"kind": "request", "seq", "id", "offset_s", "program", "language",
  "sha256", "payload"}``: the full request document and its intended send offset;
* [id/outcome] ``{"kind": "outcome", "seq", "id", "status", "stdout_sha256",
  "error"}``: what came back, so a replay can check its outputs against it;
* [``end``] ``{"kind": "end", "planned"}``: the run finished recording.

``runstream bench replay RUN`` reads this topic back (:func:`read_recording`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from runstream.schemas.errors import BrokerUnavailable
from runstream.services.bench.sample import Sample
from runstream.services.errors import ConfigurationError
from runstream.services.settings import Settings
from runstream.streams import kafka
from runstream.streams.topics import TopicSpec, ensure_topics

log = logging.getLogger(__name__)
# Topics of benchmark runs: <prefix><run-id> (record), <prefix><run-id>.replies (kafka target).
TOPIC_PREFIX = "runstream.bench."


def topic_for(settings: Settings, run_id: str) -> str:
    return f"{TOPIC_PREFIX}{run_id}"


class Recorder:
    """Appends a run's manifest, requests and outcomes to its topic."""

    def __init__(self, settings: Settings, run_id: str) -> None:
        self.settings = settings
        self.topic = topic_for(settings, run_id)
        self._producer: AIOKafkaProducer | None = None
        self._sent: list[asyncio.Future[Any]] = []

    async def start(self, manifest: dict[str, Any]) -> None:
        s = self.settings
        created = await ensure_topics(s, [TopicSpec(self.topic, 1, {
            "retention.ms": str(s.results_retention_ms),
            "max.message.bytes": str(s.message_max_bytes)})])
        if self.topic not in created:
            # Appending to another run's recording would make its replay re-issue both.
            raise ConfigurationError(
                f"a run was already recorded as {self.topic!r}: choose another --run-id")
        # Batched a little: the recording must not compete with the run it records.
        self._producer = kafka.producer(s, client_id="runstream-bench-rec", linger_ms=20)
        await kafka.start(self._producer, s)
        await self._send("manifest", {"kind": "manifest", **manifest})

    async def _send(self, key: str, doc: dict[str, Any]) -> None:
        assert self._producer is not None
        try:
            fut = await asyncio.wait_for(
                self._producer.send(self.topic, orjson.dumps(doc), key=key.encode()), 30)
        except (KafkaError, TimeoutError) as e:
            raise BrokerUnavailable(f"recording to {self.topic} failed: {e!r}") from e
        self._sent.append(fut)

    async def request(self, sample: Sample, payload: dict[str, Any]) -> None:
        await self._send(sample.id, {
            "kind": "request", "seq": sample.seq, "id": sample.id,
            "offset_s": sample.intended_s, "program": sample.program,
            "language": sample.language, "sha256": sample.payload_sha256, "payload": payload})

    async def outcome(self, sample: Sample) -> None:
        await self._send(f"{sample.id}/outcome", {
            "kind": "outcome", "seq": sample.seq, "id": sample.id, "status": sample.status,
            "stdout_sha256": sample.stdout_sha256, "error": sample.error})

    async def close(self, planned: int, timeout_s: float = 60.0) -> None:
        """Write the end marker and wait until the broker has every record."""
        if self._producer is None:
            return
        try:
            await self._send("end", {"kind": "end", "planned": planned})
            await asyncio.wait_for(asyncio.gather(*self._sent), timeout_s)
        finally:
            await kafka.close(self._producer)


@dataclass
class Recording:
    """A run read back from its topic."""

    manifest: dict[str, Any]
    requests: list[dict[str, Any]] = field(default_factory=list)
    outcomes: dict[int, dict[str, Any]] = field(default_factory=dict)
    complete: bool = False


async def read_recording(settings: Settings, run_id: str, timeout_s: float = 120.0,
                         max_records: int = 5_000_000) -> Recording:
    """Every record of ``run_id``'s topic, from the first to the end offset at call time."""
    topic = topic_for(settings, run_id)
    tp = TopicPartition(topic, 0)
    consumer = kafka.consumer(settings, client_id="runstream-bench-replay",
                              auto_offset_reset="earliest")
    await kafka.start(consumer, settings)
    manifest: dict[str, Any] = {}
    rec = Recording(manifest)
    try:
        if not await _partitions(settings, topic):
            raise BrokerUnavailable(f"no recording {topic!r} on {settings.bootstrap_servers}")
        consumer.assign([tp])
        await asyncio.wait_for(consumer.seek_to_beginning(tp), 30)
        end = (await asyncio.wait_for(consumer.end_offsets([tp]), 30))[tp]
        deadline = time.monotonic() + timeout_s
        seen = 0
        while await asyncio.wait_for(consumer.position(tp), 30) < end:
            if time.monotonic() > deadline or seen > max_records:
                raise BrokerUnavailable(f"reading {topic} did not finish in {timeout_s}s")
            batches = await consumer.getmany(tp, timeout_ms=1000, max_records=1000)
            for record in batches.get(tp, []):
                seen += 1
                _take(rec, orjson.loads(record.value))
    finally:
        await kafka.close(consumer)
    rec.requests.sort(key=lambda r: r["seq"])
    return rec


def _take(rec: Recording, doc: dict[str, Any]) -> None:
    kind = doc.get("kind")
    if kind == "manifest":
        rec.manifest.update({k: v for k, v in doc.items() if k != "kind"})
    elif kind == "request":
        rec.requests.append(doc)
    elif kind == "outcome":
        rec.outcomes[int(doc["seq"])] = doc
    elif kind == "end":
        rec.complete = True


async def _partitions(settings: Settings, topic: str) -> int:
    admin = kafka.admin(settings, client_id="runstream-bench", timeout_s=30)
    try:
        await asyncio.wait_for(admin.start(), 30)
        described = await asyncio.wait_for(admin.describe_topics([topic]), 30)
        return sum(len(t["partitions"]) for t in described if t["error_code"] == 0)
    finally:
        await kafka.close(admin)


async def replays_of(settings: Settings, run_id: str) -> int:
    """How many replays of ``run_id`` were recorded (topics ``<run-id>-r<n>``)."""
    admin = kafka.admin(settings, client_id="runstream-bench", timeout_s=30)
    try:
        await asyncio.wait_for(admin.start(), 30)
        names = await asyncio.wait_for(admin.list_topics(), 30)
    finally:
        await kafka.close(admin)
    prefix = topic_for(settings, run_id) + "-r"
    return sum(1 for n in names if n.startswith(prefix) and n[len(prefix):].isdigit())
