"""Output into bounded chunks (streams/chunking.py): coalescing, size, caps, UTF-8 edges."""

from __future__ import annotations

from runstream.streams.chunking import ChunkPolicy, Coalescer, utf8_cut

POLICY = ChunkPolicy(interval_s=0.05, max_bytes=16, cap_bytes=64, max_chunks=100)


def test_small_writes_wait_for_the_interval_then_go_as_one_chunk() -> None:
    c = Coalescer(POLICY)
    assert c.feed("run", None, "stdout", b"a", now=1.0) == []
    assert c.feed("run", None, "stdout", b"b", now=1.01) == []
    assert c.next_due() == 1.05
    assert c.due(1.04) == []
    [chunk] = c.due(1.05)
    assert (chunk.data, chunk.position, chunk.stream, chunk.truncated) == (b"ab", 0, "stdout",
                                                                          False)
    assert c.next_due() is None
    c.feed("run", None, "stdout", b"cd", now=2.0)
    [chunk] = c.flush("run", None)
    assert (chunk.data, chunk.position) == (b"cd", 2)


def test_a_big_write_goes_at_once_in_chunks_of_the_largest_size() -> None:
    c = Coalescer(POLICY)
    chunks = c.feed("run", None, "stdout", b"x" * 40, now=0.0)
    assert [len(k.data) for k in chunks] == [16, 16]
    assert [k.position for k in chunks] == [0, 16]
    [rest] = c.flush()
    assert (len(rest.data), rest.position) == (8, 32)


def test_streams_phases_and_tests_are_kept_apart() -> None:
    c = Coalescer(POLICY)
    c.feed("compile", None, "stderr", b"warn", now=0.0)
    c.feed("run", 0, "stdout", b"t0", now=0.0)
    c.feed("run", 1, "stdout", b"t1", now=0.0)
    assert [(k.phase, k.test, k.data) for k in c.flush("run", 0)] == [("run", 0, b"t0")]
    assert {(k.phase, k.test, k.stream, k.data) for k in c.due(1.0)} == {
        ("compile", None, "stderr", b"warn"), ("run", 1, "stdout", b"t1")}


def test_streaming_stops_at_the_output_cap_and_says_so() -> None:
    c = Coalescer(POLICY)
    sent = []
    for i in range(20):  # 200 bytes written, cap 64
        sent += c.feed("run", None, "stdout", b"0123456789", now=i * 0.001)
    sent += c.flush()
    assert sum(len(k.data) for k in sent) == 64
    assert sent[-1].truncated and not any(k.truncated for k in sent[:-1])
    assert c.feed("run", None, "stdout", b"more", now=1.0) == [] and c.flush() == []
    # stderr has its own cap
    assert c.feed("run", None, "stderr", b"e" * 10, now=1.0) == []
    assert [k.data for k in c.flush()] == [b"e" * 10]


def test_the_chunk_count_is_bounded_and_the_last_says_truncated() -> None:
    c = Coalescer(ChunkPolicy(interval_s=0.05, max_bytes=16, cap_bytes=10_000, max_chunks=3))
    sent = []
    for i in range(10):
        c.feed("run", None, "stdout", b"line\n", now=i * 0.1)
        sent += c.due(i * 0.1 + 0.05)
    sent += c.flush()
    assert len(sent) == 3 and sent[-1].truncated
    assert c.feed("run", None, "stderr", b"x", now=5.0) == [] and c.flush() == []


def test_a_chunk_does_not_split_a_utf8_character() -> None:
    euro = "€".encode()  # 3 bytes
    assert utf8_cut(b"ab" + euro[:2]) == 2
    assert utf8_cut(b"ab" + euro) == 5
    assert utf8_cut(b"ab") == 2
    c = Coalescer(ChunkPolicy(interval_s=0.05, max_bytes=4, cap_bytes=100, max_chunks=100))
    chunks = c.feed("run", None, "stdout", b"abc" + euro, now=0.0)
    chunks += c.flush()
    assert [k.data for k in chunks] == [b"abc", euro]
    assert all(k.data.decode() for k in chunks)
    # written in two pieces, the held-back bytes join the rest
    c = Coalescer(POLICY)
    c.feed("run", None, "stdout", b"x" + euro[:1], now=0.0)
    first = c.due(0.05)
    c.feed("run", None, "stdout", euro[1:], now=0.06)
    second = c.due(0.2)
    assert [k.data for k in first] == [b"x"] and [k.data for k in second] == [euro]
    assert second[0].position == 1


def test_a_phase_that_hit_the_sandboxs_cap_ends_with_a_truncated_chunk() -> None:
    c = Coalescer(POLICY)
    c.feed("run", None, "stdout", b"y\n" * 4, now=0.0)
    [last] = c.flush("run", None, truncated=("stdout",))
    assert (last.data, last.truncated) == (b"y\n" * 4, True)
    # all of it had gone out already: an empty chunk carries the flag
    c = Coalescer(POLICY)
    sent = c.feed("run", None, "stderr", b"e" * 16, now=0.0)
    [marker] = c.flush("run", None, truncated=("stderr",))
    assert [k.data for k in sent] == [b"e" * 16]
    assert (marker.data, marker.position, marker.truncated) == (b"", 16, True)
