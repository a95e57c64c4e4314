"""Workload files and the generator: same file and seed, same sequence."""

from __future__ import annotations

from itertools import islice

import pytest
from runstream.schemas.codec import request_from_doc
from runstream.services.bench.workload import (
    WorkloadError,
    builtin_names,
    generate,
    load_workload,
    parse_workload,
    payload_for,
    payload_hash,
    replay_id,
    sequence_hash,
)

MIX = """
name = "mix"
seed = 5
[limits]
wall_ms = 1000
[[programs]]
name = "a"
language = "python"
weight = 3
source = "import random\\nrandom.seed({{seed}})\\nprint(random.random())"
[[programs]]
name = "b"
language = "bash"
weight = 1
stdin = "x"
source = "cat"
limits = { wall_ms = 500 }
"""


def _hashes(run_id: str, seed: int | None, n: int = 200) -> list[str]:
    return [payload_hash(p.payload) for p in islice(generate(parse_workload(MIX), run_id, seed),
                                                    n)]


def test_same_seed_same_sequence_whatever_the_run_id() -> None:
    assert _hashes("run1", None) == _hashes("run2", None)
    assert _hashes("run1", 5) == _hashes("run1", None)  # the file's seed is the default


def test_another_seed_another_sequence() -> None:
    assert _hashes("run1", 6) != _hashes("run1", 5)


def test_weights_and_seed_baking() -> None:
    plans = list(islice(generate(parse_workload(MIX), "r", 5), 2000))
    share = sum(p.program == "a" for p in plans) / len(plans)
    assert 0.70 < share < 0.80  # weight 3 of 4
    sources = [p.payload["source"] for p in plans if p.program == "a"]
    assert "{{seed}}" not in sources[0] and len(set(sources)) > 100  # a seed per request
    b = next(p for p in plans if p.program == "b")
    assert b.payload["limits"] == {"wall_ms": 500} and b.payload["stdin"] == "x"
    a = next(p for p in plans if p.program == "a")
    assert a.payload["limits"] == {"wall_ms": 1000}


def test_ids_are_valid_sequential_and_excluded_from_the_hash() -> None:
    plans = list(islice(generate(parse_workload(MIX), "20260101-000000-ab12", 5), 3))
    assert [p.id for p in plans] == [f"20260101-000000-ab12-00000{i}" for i in range(3)]
    moved = {**plans[0].payload, "id": replay_id(plans[0].id, 1)}
    assert moved["id"].endswith("-r1")
    assert payload_hash(moved) == payload_hash(plans[0].payload)
    assert sequence_hash(["a", "b"]) != sequence_hash(["b", "a"])


@pytest.mark.parametrize("name", builtin_names())
def test_shipped_workloads_parse(name: str) -> None:
    w = load_workload(name)
    assert w.programs and w.name == name


def test_shipped_set_covers_the_issue() -> None:
    assert {"braindrill", "polyglot", "cpu", "sleep", "hostile"} <= set(builtin_names())
    assert [p.name for p in load_workload("braindrill").programs] == [
        "memory-intensive", "cpu-intensive", "random-loop", "print-loop", "instant"]
    languages = {p.language for p in load_workload("polyglot").programs}
    assert languages == {"python", "javascript", "typescript", "java", "c", "cpp", "go",
                         "rust", "ruby", "perl", "php", "bash"}


@pytest.mark.parametrize(("text", "fragment"), [
    ("seed = 1", "'name' is required"),
    ('name = "x"', "at least one"),
    ('name = "x"\n[[programs]]\nname = "a"\nlanguage = "py"', "'source' is required"),
    ('name = "x"\n[[programs]]\nname="a"\nlanguage="py"\nsource="1"\nweight=0', "positive"),
    ('name = "x"\n[limits]\nbogus = 1\n[[programs]]\nname="a"\nlanguage="py"\nsource="1"',
     "unknown limits"),
])
def test_bad_workloads_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(WorkloadError, match=fragment):
        parse_workload(text)


def test_the_judging_workload_sends_checkers_and_interactors_as_requests() -> None:
    w = load_workload("judging")
    requests = {p.name: request_from_doc(payload_for(p, f"x-{p.name}", 1)) for p in w.programs}
    assert requests["floats"].checker.kind == "floats" and requests["floats"].tests[0].points
    assert requests["checker-program"].checker_program is not None
    assert requests["interactor"].interactor is not None
    assert all(len(r.tests) == 4 for r in requests.values())
