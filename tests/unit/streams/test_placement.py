"""Partition placement: balanced, sticky, and a partition with a run in progress never moves."""

from __future__ import annotations

from runstream.streams.placement import Member, place

PARTS = range(12)


def _sizes(assignment: dict[str, list[int]]) -> list[int]:
    return sorted(len(p) for p in assignment.values())


def _every_partition_once(assignment: dict[str, list[int]]) -> None:
    flat = [p for parts in assignment.values() for p in parts]
    assert sorted(flat) == list(PARTS)


def test_new_group_is_balanced() -> None:
    out = place(PARTS, {"a": Member(), "b": Member(), "c": Member()})
    _every_partition_once(out)
    assert _sizes(out) == [4, 4, 4]


def test_a_member_that_left_hands_its_partitions_to_the_others_and_no_one_else_moves() -> None:
    before = place(PARTS, {"a": Member(), "b": Member(), "c": Member()})
    after = place(PARTS, {"a": Member(frozenset(before["a"])),
                          "b": Member(frozenset(before["b"]))})
    _every_partition_once(after)
    assert set(before["a"]) <= set(after["a"]) and set(before["b"]) <= set(after["b"])
    assert _sizes(after) == [6, 6]


def test_a_joining_member_gets_idle_partitions_and_busy_ones_stay() -> None:
    owned_a, owned_b = frozenset(range(0, 6)), frozenset(range(6, 12))
    busy_a, busy_b = frozenset({0, 1, 2, 3, 4, 5}), frozenset({6})
    out = place(PARTS, {"a": Member(owned_a, busy_a), "b": Member(owned_b, busy_b),
                        "c": Member()})
    _every_partition_once(out)
    assert busy_a <= set(out["a"]) and busy_b <= set(out["b"])  # running work stays
    assert len(out["c"]) >= 3  # the newcomer still gets a share, from b's idle ones


def test_a_partition_claimed_twice_goes_to_the_member_running_something_on_it() -> None:
    out = place(PARTS, {"a": Member(frozenset({1, 2}), frozenset()),
                        "b": Member(frozenset({2}), frozenset({2}))})
    _every_partition_once(out)
    assert 2 in out["b"]


def test_no_members_no_assignment_and_stale_partitions_are_ignored() -> None:
    assert place(PARTS, {}) == {}
    out = place(range(4), {"a": Member(frozenset({7, 8}))})  # the topic shrank? ignore
    assert out == {"a": [0, 1, 2, 3]}
