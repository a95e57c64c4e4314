"""The Piston routes in-process (no broker): what the running system cannot show.

The ingress process has no WebSocket library, so a handshake on /api/v2/connect
never reaches the WebSocket route there; here Starlette's test client speaks
WebSocket to it directly. Everything else is covered over HTTP in
tests/e2e/test_piston_api.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runstream.services.ingress.app import create_app
from runstream.services.ingress.gateway import Gateway
from runstream.services.settings import Settings
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect


def client(tmp_path: Path) -> TestClient:
    settings = Settings.from_env({}, index_dir=str(tmp_path))
    # Not started (no lifespan): these routes never reach Kafka.
    return TestClient(create_app(settings, gateway=Gateway(settings)))


def test_the_websocket_is_refused_as_piston_refuses_on_it(tmp_path: Path) -> None:
    with client(tmp_path).websocket_connect("/api/v2/connect") as ws:
        msg = ws.receive_json()
        assert msg["type"] == "error" and "not available" in msg["message"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert (closed.value.code, closed.value.reason) == (4002, "Notified Error")


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/api/v2/connect", 501), ("POST", "/api/v2/packages", 405),
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
