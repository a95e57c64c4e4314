"""The worker writes a webhook job with every result of a request that has a callback.

Same harness as test_handling.py (a real Executor, a scripted sandbox, a fake
broker): these are the handler's decisions; tests/e2e/test_webhooks.py runs the
same path against a real Kafka and real deliverers.
"""

from __future__ import annotations

from runstream.schemas.webhooks import decode_job

from tests.unit.streams.test_handling import RESULTS, SETTINGS, _delivery, _handle, _handler

JOBS = SETTINGS.callbacks_topic
HOOK = {"url": "https://example.com/hook", "method": "PUT", "format": "judge0"}


async def test_a_result_with_a_callback_is_stored_replied_then_its_job_written() -> None:
    handler, pub, _, _ = _handler()
    ok, _ = await _handle(handler, _delivery({"language": "python", "source": "echo:hi",
                                              "reply_to": {"topic": "mine"}, "callback": HOOK}))
    assert ok
    assert [t for t, *_ in pub.sent] == [RESULTS, "mine", JOBS]
    [(_, key, job, _)] = [s for s in pub.sent if s[0] == JOBS]
    exec_id, cb, key_id, _, result = decode_job(job)
    assert key == b"id-1" and exec_id == "id-1" and key_id is None
    assert (cb.url, cb.method, cb.format) == (HOOK["url"], "PUT", "judge0")
    assert result["run"]["stdout"] == "hi"
    assert pub.to(RESULTS)[0] == result  # the stored result, byte for byte the same document


async def test_a_refused_request_with_a_callback_gets_its_refusal_called_back() -> None:
    handler, pub, sandbox, _ = _handler()
    ok, _ = await _handle(handler, _delivery({"language": "python", "source": "echo:hi",
                                              "reply_to": {"topic": "nowhere"},
                                              "callback": "http://127.0.0.1:9/h"}))
    assert ok and sandbox.runs == 0
    [job] = [v for t, _, v, _ in pub.sent if t == JOBS]
    assert decode_job(job)[4]["status"] == "rejected"


async def test_a_redelivered_answered_request_writes_its_job_again_without_running() -> None:
    # The previous owner may have died between storing the result and writing the job.
    handler, pub, sandbox, answers = _handler()
    answers.stored["id-1"] = b'{"id":"id-1","status":"ok"}'
    ok, _ = await _handle(handler, _delivery(
        {"language": "python", "source": "echo:again", "callback": "https://example.com/h"},
        redelivery=True))
    assert ok and sandbox.runs == 0
    [job] = [v for t, _, v, _ in pub.sent if t == JOBS]
    assert decode_job(job)[4] == {"id": "id-1", "status": "ok"}


async def test_no_callback_no_job() -> None:
    handler, pub, _, _ = _handler()
    ok, _ = await _handle(handler, _delivery({"language": "python", "source": "echo:hi"}))
    assert ok and [t for t, *_ in pub.sent] == [RESULTS]


async def test_a_job_the_broker_refuses_leaves_the_result_stored_and_the_offset_committable(
        ) -> None:
    handler, pub, _, answers = _handler(broken={JOBS})
    ok, _ = await _handle(handler, _delivery({"language": "python", "source": "echo:hi",
                                              "callback": "https://example.com/h"}))
    assert ok and "id-1" in answers.stored
    assert [t for t, *_ in pub.sent] == [RESULTS]
