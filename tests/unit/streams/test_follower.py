"""The follower base's life cycle over a fake consumer: start, follow, caught up, stop.

The integration suites (keys, events, results, replies) run the same code against
a real broker; here each step is shown on its own, including a read that fails.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from runstream.services.settings import Settings
from runstream.streams.follower import Follower

SETTINGS = Settings.from_env({})
TP = TopicPartition("t", 0)


class Record:
    def __init__(self, offset: int) -> None:
        self.topic, self.partition, self.offset = TP.topic, TP.partition, offset
        self.key, self.value = b"k", b"v%d" % offset


class FakeConsumer:
    """What Follower asks of aiokafka's consumer; ``written`` records wait to be read."""

    def __init__(self, written: int) -> None:
        self.end = written
        self.position_ = 0
        self.started = self.stopped = False
        self.fail_next = False
        self.asked = 0  # position() calls
        self._wrote = asyncio.Event()

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def assign(self, tps: list[TopicPartition]) -> None:
        assert tps == [TP]

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        raise AssertionError("offsets asked of the consumer that fetches: the broker answers "
                             "them only after the fetch it holds")

    async def position(self, tp: TopicPartition) -> int:
        self.asked += 1
        return self.position_

    def write(self) -> None:
        self.end += 1
        self._wrote.set()

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[Any, list[Record]]:
        if self.fail_next:
            self.fail_next = False
            raise OSError("broker restarting")
        if self.position_ >= self.end:
            self._wrote.clear()
            await self._wrote.wait()
        records = [Record(o) for o in range(self.position_, min(self.end,
                                                                 self.position_ + max_records))]
        self.position_ += len(records)
        return {TP: records}


class FakeOffsets:
    """The follower's second client: it only answers questions about offsets."""

    def __init__(self, consumer: FakeConsumer) -> None:
        self.consumer = consumer
        self.started = self.stopped = False
        self.asked = 0  # end_offsets() calls

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {TP.partition}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.asked += 1
        return {TP: self.consumer.end}


class Probe(Follower):
    max_records = 2

    def __init__(self, consumer: FakeConsumer) -> None:
        super().__init__(SETTINGS, "t", client_id="probe")
        self.fake = consumer
        self.fake_offsets = FakeOffsets(consumer)
        self.read: list[int] = []

    def _new_consumer(self) -> AIOKafkaConsumer:
        return cast(AIOKafkaConsumer, self.fake)

    def _new_offsets_client(self) -> AIOKafkaConsumer:
        return cast(AIOKafkaConsumer, self.fake_offsets)

    async def _assign(self, consumer: AIOKafkaConsumer, deadline: float) -> None:
        consumer.assign([TP])
        self._set_positions([TP], {0: 0})

    def _on_record(self, record: Any) -> None:
        self.read.append(record.offset)


async def test_it_follows_to_the_end_and_says_when_it_caught_up() -> None:
    consumer = FakeConsumer(written=5)
    follower = Probe(consumer)
    await follower.start(timeout_s=5)
    assert consumer.started
    assert await follower.caught_up(5)
    assert follower.read == [0, 1, 2, 3, 4]
    consumer.fail_next = True  # the read after the next one fails: it goes on after that
    consumer.write()
    assert await follower.caught_up(5)
    consumer.write()
    assert await follower.caught_up(5)
    assert follower.read == [0, 1, 2, 3, 4, 5, 6] and not consumer.fail_next
    # The ends came from the client that never fetches (FakeConsumer refuses to answer).
    assert follower.fake_offsets.asked == 3
    await follower.stop()
    assert consumer.stopped and follower._task is None
    assert follower.fake_offsets.started and follower.fake_offsets.stopped


async def test_caught_up_is_false_when_the_positions_do_not_reach_the_end_in_time() -> None:
    consumer = FakeConsumer(written=3)
    follower = Probe(consumer)
    await follower.start(timeout_s=5)
    assert await follower.caught_up(5)
    consumer.end += 1  # an offset nobody will read (a record not fetchable yet)
    assert not await follower.caught_up(0.2)
    await follower.stop()
    assert not await follower.caught_up(1), "a stopped follower is not caught up"


async def test_a_start_that_fails_after_connecting_stops_what_it_started() -> None:
    class Failing(Probe):
        async def _ready(self, deadline: float) -> None:
            raise TimeoutError("no partition in time")

    consumer = FakeConsumer(written=0)
    follower = Failing(consumer)
    with pytest.raises(TimeoutError, match="no partition"):
        await asyncio.wait_for(follower.start(timeout_s=5), 10)
    assert consumer.stopped and follower._task is None and follower.fake_offsets.stopped


async def test_rounds_read_no_positions_unless_someone_waits_to_catch_up() -> None:
    # A follower of the events topic goes round for every event: reading every
    # partition's position after each round cost the ingress CPU per execution.
    consumer = FakeConsumer(written=0)
    follower = Probe(consumer)
    await follower.start(timeout_s=5)
    for _ in range(5):
        consumer.write()
        rounds = follower._rounds
        async with follower._progress:
            await asyncio.wait_for(
                follower._progress.wait_for(lambda: follower._rounds > rounds), 5)  # noqa: B023
    assert follower.read == [0, 1, 2, 3, 4] and consumer.asked == 0
    assert await follower.caught_up(5) and consumer.asked >= 1
    await follower.stop()
