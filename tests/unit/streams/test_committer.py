"""The committer over the offset ledger: what is due, what the broker accepted (no Kafka)."""

from __future__ import annotations

import pytest
from runstream.streams.committer import Committer
from runstream.streams.ledger import OffsetLedger


def _committer() -> Committer[str]:
    ledger: OffsetLedger[str] = OffsetLedger()
    for offset in (0, 1, 2):
        ledger.take("a", offset)
    ledger.take("b", 7)
    ledger.finish("a", 0)
    ledger.finish("b", 7)
    return Committer(ledger)


async def test_commits_what_is_due_for_the_partitions_owned_and_records_it() -> None:
    commits = _committer()
    sent: list[dict[str, int]] = []

    async def send(offsets: dict[str, int]) -> None:
        sent.append(offsets)

    assert await commits.commit(send, {"a"}, timeout_s=1) == {"a": 1}
    assert sent == [{"a": 1}]
    assert not commits.should_commit("a", 1) and commits.should_commit("a", 2)
    assert await commits.commit(send, {"a"}, timeout_s=1) == {}, "nothing new is due"
    assert sent == [{"a": 1}], "an offset committed already is not sent again"
    assert sorted(commits.progressed({"a", "b", "c"})) == ["a", "b"]
    assert commits.safe_offset("b") == 8


async def test_a_commit_the_broker_did_not_accept_is_not_recorded() -> None:
    commits = _committer()

    async def refused(offsets: dict[str, int]) -> None:
        raise OSError("broker away")

    with pytest.raises(OSError):
        await commits.commit(refused, {"a", "b"}, timeout_s=1)
    assert commits.should_commit("a", 1) and commits.should_commit("b", 8)
    assert commits.due({"a", "b"}) == {"a": 1, "b": 8}
