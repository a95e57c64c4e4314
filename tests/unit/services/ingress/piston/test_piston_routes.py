"""The Piston routes in-process (no broker): refusals that need no worker.

The WebSocket /api/v2/connect's rules before a program runs (init within a
second, messages before init, a bad init) are checked here with Starlette's test
client; sessions that run programs, over a real socket, are in
tests/e2e/test_piston_connect.py, and everything else over HTTP in
tests/e2e/test_piston_api.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runstream.services.ingress.app import create_app
from runstream.services.settings import Settings
from runstream.streams.channel import RequestChannel
from starlette.testclient import TestClient, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect


def client(tmp_path: Path) -> TestClient:
    settings = Settings.from_env({}, index_dir=str(tmp_path))
    # Not started (no lifespan): these routes never reach Kafka.
    return TestClient(create_app(settings, channel=RequestChannel(settings)))


def closed(ws: WebSocketTestSession) -> tuple[int, str]:
    with pytest.raises(WebSocketDisconnect) as e:
        ws.receive_text()
    return e.value.code, e.value.reason


def test_no_init_within_a_second_is_4001(tmp_path: Path) -> None:
    with client(tmp_path).websocket_connect("/api/v2/connect") as ws:
        ws.send_json({"type": "ping"})  # ignored, as on Piston: the clock runs on
        assert closed(ws) == (4001, "Initialization Timeout")


@pytest.mark.parametrize("message", [
    {"type": "data", "stream": "stdin", "data": "x"}, {"type": "signal", "signal": "SIGINT"},
    {"type": "eof"}])
def test_input_before_init_is_4003(tmp_path: Path, message: dict[str, str]) -> None:
    with client(tmp_path).websocket_connect("/api/v2/connect") as ws:
        ws.send_json(message)
        assert closed(ws) == (4003, "Not yet initialized")


def test_garbage_and_a_bad_init_are_an_error_then_4002(tmp_path: Path) -> None:
    with client(tmp_path).websocket_connect("/api/v2/connect") as ws:
        ws.send_text("{nope")
        error = ws.receive_json()
        assert error["type"] == "error" and "not valid JSON" in error["message"]
        assert closed(ws) == (4002, "Notified Error")
    with client(tmp_path).websocket_connect("/api/v2/connect") as ws:
        ws.send_json({"type": "init", "language": "python"})
        assert ws.receive_json() == {"type": "error",
                                     "message": "version is required as a string"}
        assert closed(ws) == (4002, "Notified Error")
    with client(tmp_path).websocket_connect("/api/v2/connect") as ws:  # no worker serves it
        ws.send_json({"type": "init", "language": "python", "version": "*",
                      "files": [{"content": "print(1)"}]})
        assert ws.receive_json() == {"type": "error",
                                     "message": "python-* runtime is unknown"}
        assert closed(ws) == (4002, "Notified Error")


def test_a_plain_http_request_there_is_told_to_upgrade(tmp_path: Path) -> None:
    r = client(tmp_path).get("/api/v2/connect")
    assert r.status_code == 426 and r.headers["upgrade"] == "websocket"
    assert "WebSocket" in r.json()["message"]


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/api/v2/connect", 426), ("POST", "/api/v2/packages", 405),
    ("DELETE", "/api/v2/packages/python/3.11.2", 405), ("GET", "/api/v2/packages/x", 404),
    ("PUT", "/api/v2/execute", 404), ("PATCH", "/api/v2/anything", 404),
])
def test_every_path_and_method_answers_pistons_message(tmp_path: Path, method: str, path: str,
                                                       status: int) -> None:
    r = client(tmp_path).request(method, path)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert list(r.json()) == ["message"]


def test_a_wrong_content_type_is_415_before_anything_else(tmp_path: Path) -> None:
    r = client(tmp_path).post("/api/v2/execute", content=b"<x/>",
                              headers={"Content-Type": "application/xml"})
    assert (r.status_code, r.json()) == (415, {"message": "requests must be of type "
                                                          "application/json"})
