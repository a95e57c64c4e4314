"""The CPU budget of `runstream bench speed`: categories and per-request arithmetic."""

from __future__ import annotations

from collections import Counter

from runstream.services.bench._budget import (
    OTHER,
    CpuWindow,
    budget_markdown,
    budget_rows,
    categorise,
)


def test_a_sample_belongs_to_its_innermost_known_frame() -> None:
    lines = [
        # uvicorn -> gateway -> aiokafka producer: the produce, not the HTTP layer
        "run (uvicorn/server.py:1);submit (services/ingress/gateway.py:2);"
        "send (aiokafka/producer/producer.py:3) 5",
        # the worker spawning a sandbox: the spawn, though asyncio is outermost
        "_run (asyncio/events.py:80);run (services/execution/sandbox/bwrap/_run.py:9);"
        "_execute_child (subprocess.py:1834) 7",
        "select (selectors.py:468) 2",
        "mystery (elsewhere.py:1) 1",
        "garbage line without a count",
    ]
    got = categorise(lines)
    assert got == Counter({"Kafka: produce": 5, "sandbox: spawn (fork, exec)": 7,
                           "asyncio event loop": 2, OTHER: 1})


def test_asyncio_events_module_is_the_loop_not_live_events() -> None:
    got = categorise(["_run (asyncio/events.py:80) 3",
                      "emit (streams/event_publisher.py:40) 4"])
    assert got == Counter({"asyncio event loop": 3, "live events": 4})


def test_faust_and_the_request_channel_have_rows_of_their_own() -> None:
    got = categorise([
        "run (streams/faust_app.py:1);_py_aiter (site-packages/faust/streams.py:9) 3",
        "commit (site-packages/faust/transport/consumer.py:1);"
        "send (site-packages/aiokafka/consumer/group_coordinator.py:2) 2",
        "submit (services/ingress/app.py:1);_produce (streams/channel.py:2) 4",
        "take (streams/agent.py:1) 1"])
    assert got == Counter({"Faust (stream, commits, consumer thread)": 3,
                           "Kafka: fetch, consume": 2,
                           "request channel (produce, replies, waiters, group)": 4,
                           "worker loop, dedupe, publish": 1})


def test_per_request_budget_splits_profiled_processes_and_keeps_the_rest() -> None:
    window = CpuWindow(requests=100, wall_s=10.0, machine_s=12.0,
                       by_role={"ingress": 0.5, "broker": 1.0, "load generator": 0.5})
    assert window.per_request_ms("ingress") == 5.0
    assert window.rest_s == 10.0  # the sandboxed programs and the kernel
    assert round(window.share("load generator"), 3) == round(0.5 / 12.0, 3)
    rows = budget_rows(window, {"ingress": Counter({"HTTP": 3, "Kafka: produce": 1})})
    assert ("ingress", "HTTP", 3.75) in rows and ("ingress", "Kafka: produce", 1.25) in rows
    assert ("broker", "all", 10.0) in rows
    assert rows[-1] == ("the rest of the machine (the sandboxed programs, the kernel)", "all",
                        100.0)
    text = budget_markdown(window)
    assert "| **ingress, total** | | **5.00** |" in text
