"""The worker group's partition assignor: :func:`placement.place` spoken in Kafka's protocol.

Each member's join metadata carries the partitions it owns and those with a run
in progress (JSON in the protocol's user data); the group leader places
partitions from them. Every worker must use it (one protocol name per group).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from runstream.streams.placement import Member, place

log = logging.getLogger(__name__)

#: Per topic, (owned, busy) partitions, asked for at each join.
StateFn = Callable[[], tuple[Mapping[str, set[int]], Mapping[str, set[int]]]]


class BusyStickyAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
    """Sticky assignment in which a partition with a run in progress does not move."""

    name = "runstream-busy-sticky"
    version = 0

    def __init__(self, state: StateFn) -> None:
        self._state = state

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        owned, busy = self._state()
        data = orjson.dumps({"owned": {t: sorted(p) for t, p in owned.items()},
                             "busy": {t: sorted(p) for t, p in busy.items()}})
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), data)

    def assign(self, cluster: ClusterMetadata,
               members: Mapping[str, ConsumerProtocolMemberMetadata],
               ) -> dict[str, ConsumerProtocolMemberAssignment]:
        topics = sorted({t for m in members.values() for t in m.subscription})
        out: dict[str, list[tuple[str, list[int]]]] = {member: [] for member in members}
        for topic in topics:
            partitions = cluster.partitions_for_topic(topic) or set()
            subscribed = {name: _decode(meta, topic) for name, meta in members.items()
                          if topic in meta.subscription}
            for member, parts in place(partitions, subscribed).items():
                if parts:
                    out[member].append((topic, parts))
        return {member: ConsumerProtocolMemberAssignment(self.version, assignment, b"")
                for member, assignment in out.items()}

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        pass


def _decode(meta: ConsumerProtocolMemberMetadata, topic: str) -> Member:
    """What the member owns and runs of ``topic``."""
    try:
        doc = orjson.loads(meta.user_data or b"{}")
        return Member(owned=_partitions(doc.get("owned"), topic),
                      busy=_partitions(doc.get("busy"), topic))
    except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
        log.warning("a member's assignment metadata is unreadable; treated as new")
        return Member()


def _partitions(value: Any, topic: str) -> frozenset[int]:
    if isinstance(value, dict):
        return frozenset(int(p) for p in value.get(topic, ()))
    # A worker of an earlier release (one flat list for every topic), during a rolling
    # upgrade: its claims are then only approximate, and place() resolves any conflict.
    return frozenset(int(p) for p in value or ())
