"""The group assignor: each topic placed from what members own and run of that topic."""

from __future__ import annotations

import orjson
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
from runstream.streams.assignor import BusyStickyAssignor


class _Cluster:
    """The one method of aiokafka's ClusterMetadata the assignor reads (pure test, no broker)."""

    def __init__(self, partitions: dict[str, int]) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions[topic]))


def _meta(topics: list[str], owned: object, busy: object) -> ConsumerProtocolMemberMetadata:
    data = orjson.dumps({"owned": owned, "busy": busy})
    return ConsumerProtocolMemberMetadata(0, topics, data)


def _assigned(result: dict, member: str) -> dict[str, list[int]]:  # type: ignore[type-arg]
    return dict(result[member].assignment)


def test_metadata_carries_owned_and_busy_per_topic() -> None:
    a = BusyStickyAssignor(lambda: ({"req": {1, 0}, "req.ruby": {0}}, {"req.ruby": {0}}))
    doc = orjson.loads(a.metadata(["req", "req.ruby"]).user_data)
    assert doc == {"owned": {"req": [0, 1], "req.ruby": [0]}, "busy": {"req.ruby": [0]}}


def test_a_busy_partition_of_one_topic_does_not_pin_the_same_number_of_another() -> None:
    cluster = _Cluster({"req": 4, "req.ruby": 2})
    a = BusyStickyAssignor(lambda: ({}, {}))
    members = {
        # "old" owns everything and is running something on req.ruby partition 0 only.
        "old": _meta(["req", "req.ruby"], {"req": [0, 1, 2, 3], "req.ruby": [0, 1]},
                     {"req.ruby": [0]}),
        "new": _meta(["req", "req.ruby"], {}, {}),
    }
    out = a.assign(cluster, members)  # type: ignore[arg-type]
    old, new = _assigned(out, "old"), _assigned(out, "new")
    assert 0 in old["req.ruby"]  # busy: stays
    assert len(old["req"]) == 2 and len(new["req"]) == 2
    # req 0 is idle, so it may move like any idle partition (placement hands over the
    # lowest first); read as pinned, old would have kept it.
    assert 0 in new["req"]
    assert sorted(old["req"] + new["req"]) == [0, 1, 2, 3]


def test_a_topic_only_some_members_read_goes_to_them_alone() -> None:
    cluster = _Cluster({"req": 4, "req.ruby": 2})
    a = BusyStickyAssignor(lambda: ({}, {}))
    members = {"full": _meta(["req", "req.ruby"], {}, {}), "no-ruby": _meta(["req"], {}, {})}
    out = a.assign(cluster, members)  # type: ignore[arg-type]
    assert _assigned(out, "full")["req.ruby"] == [0, 1]
    assert "req.ruby" not in _assigned(out, "no-ruby")
    assert len(_assigned(out, "full")["req"]) == len(_assigned(out, "no-ruby")["req"]) == 2


def test_a_flat_list_from_an_older_worker_is_still_read() -> None:
    cluster = _Cluster({"req": 4})
    a = BusyStickyAssignor(lambda: ({}, {}))
    members = {"old": _meta(["req"], [0, 1, 2, 3], [2]), "new": _meta(["req"], {}, {})}
    out = a.assign(cluster, members)  # type: ignore[arg-type]
    assert 2 in _assigned(out, "old")["req"]
    assert len(_assigned(out, "new")["req"]) == 2


def test_the_ingress_reads_a_members_partitions_of_the_requests_topic() -> None:
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
    from runstream.streams.worker_group import assigned_partitions

    raw = ConsumerProtocolMemberAssignment(0, [("req", [3, 1]), ("req.ruby", [0])], b"").encode()
    assert assigned_partitions(raw, "req") == [1, 3]
    assert assigned_partitions(raw, "other") == []
    assert assigned_partitions(b"", "req") == []  # mid-rebalance: nothing assigned yet
    assert assigned_partitions(b"\x00garbage", "req") == []
