"""Which worker owns which partition: sticky, balanced, and busy partitions never move.

A partition with a run in progress stays with its owner while that owner is in
the group: moving it would make the new owner read the running request again
and run it a second time (a long run would be executed twice because a worker
joined). Idle partitions move as needed for balance; partitions of members that
left go to the least loaded. Pure: no Kafka here (the assignor adapts it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Member:
    """What a member reports when it joins: the partitions it owns and those running."""

    owned: frozenset[int] = field(default_factory=frozenset)
    busy: frozenset[int] = field(default_factory=frozenset)


def place(partitions: Iterable[int], members: Mapping[str, Member]) -> dict[str, list[int]]:
    """Assign every partition to one member (an empty mapping if there are no members)."""
    parts = sorted(set(partitions))
    names = sorted(members)
    if not names:
        return {}
    load: dict[str, set[int]] = {name: set() for name in names}
    busy: set[int] = set()
    # Keep what members own. A partition claimed twice (a member that was thrown
    # out of the group and came back) goes to the one running something on it.
    claims = sorted(((p, name) for name in names for p in members[name].owned if p in parts),
                    key=lambda c: (c[0], c[0] not in members[c[1]].busy, c[1]))
    for p, name in claims:
        if all(p not in held for held in load.values()):
            load[name].add(p)
            if p in members[name].busy:
                busy.add(p)
    pool = [p for p in parts if all(p not in held for held in load.values())]
    ceiling = -(-len(parts) // len(names))
    for name in names:  # take back idle partitions from members above the fair share
        idle = sorted(load[name] - busy, reverse=True)
        while len(load[name]) > ceiling and idle:
            p = idle.pop()
            load[name].discard(p)
            pool.append(p)
    for p in sorted(pool):
        least = min(names, key=lambda n: (len(load[n]), n))
        load[least].add(p)
    _balance(load, busy, names)
    return {name: sorted(load[name]) for name in names}


def _balance(load: dict[str, set[int]], busy: set[int], names: list[str]) -> None:
    """Move idle partitions from the most to the least loaded until within one."""
    for _ in range(sum(len(held) for held in load.values())):
        least = min(names, key=lambda n: (len(load[n]), n))
        for donor in sorted(names, key=lambda n: (-len(load[n]), n)):
            if len(load[donor]) - len(load[least]) <= 1:
                return
            idle = sorted(load[donor] - busy)
            if idle:  # what is running moves once idle, at a later rebalance
                load[donor].discard(idle[-1])
                load[least].add(idle[-1])
                break
        else:
            return
