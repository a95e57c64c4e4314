"""The commit rule: an offset is committed only when every earlier one is answered."""

from __future__ import annotations

from runstream.streams.ledger import OffsetLedger


def test_out_of_order_finish_does_not_commit_past_a_running_offset() -> None:
    # The scenario: slow (offset 10) and fast (11) run in two slots; the
    # fast one finishes first. Committing 12 would lose the slow one on a crash.
    ledger: OffsetLedger[str] = OffsetLedger()
    assert ledger.take("p0", 10) and ledger.take("p0", 11)
    ledger.finish("p0", 11)
    assert ledger.committable() == {"p0": 10}
    ledger.finish("p0", 10)
    assert ledger.committable() == {"p0": 12}


def test_nothing_to_commit_until_something_was_taken_or_it_advanced() -> None:
    ledger: OffsetLedger[str] = OffsetLedger()
    assert ledger.committable() == {}
    ledger.take("p", 0)
    assert ledger.committable() == {"p": 0}
    ledger.committed({"p": 0})
    assert ledger.committable() == {}  # not ahead of what was committed
    ledger.finish("p", 0)
    assert ledger.committable() == {"p": 1}


def test_gaps_in_offsets_are_not_waited_for() -> None:
    # Transaction markers and compaction leave gaps; offsets never seen are not pending.
    ledger: OffsetLedger[str] = OffsetLedger()
    for offset in (3, 7, 9):
        ledger.take("p", offset)
    for offset in (9, 3):
        ledger.finish("p", offset)
    assert ledger.committable() == {"p": 7}
    ledger.finish("p", 7)
    assert ledger.committable() == {"p": 10}


def test_a_redelivered_offset_is_not_taken_twice() -> None:
    ledger: OffsetLedger[str] = OffsetLedger()
    assert ledger.take("p", 5)
    assert not ledger.take("p", 5)  # re-fetched after a rebalance while running
    ledger.finish("p", 5)
    assert not ledger.take("p", 4)  # below what was taken: answered already
    assert ledger.take("p", 6)


def test_partitions_are_independent_and_forgotten_ones_ignore_late_finishes() -> None:
    ledger: OffsetLedger[str] = OffsetLedger()
    ledger.take("a", 1)
    ledger.take("b", 1)
    ledger.finish("b", 1)
    assert ledger.committable() == {"a": 1, "b": 2}
    assert ledger.committable(["b"]) == {"b": 2}
    ledger.forget(["a"])
    ledger.finish("a", 1)  # a run that outlived its partition's move: no effect
    assert ledger.committable() == {"b": 2}
    assert ledger.pending("b") == set()
