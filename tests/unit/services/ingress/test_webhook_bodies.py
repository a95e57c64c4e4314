"""Webhook bodies by format (the renderer table) and the secret that signs them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from runstream.services.ingress.webhook_bodies import RENDERERS, RenderError, Secrets, render
from runstream.services.settings import Settings

RESULT = {"schema": "runstream.result.v1", "id": "a", "status": "ok"}


def test_the_runstream_format_is_the_result_document_as_it_is() -> None:
    assert orjson.loads(render("runstream", RESULT)) == RESULT


def test_judge0_is_rendered_by_its_wire_module() -> None:
    from runstream.services.ingress.judge0.wire import callback_body

    assert RENDERERS["judge0"] is callback_body


def test_an_unknown_format_and_a_failing_renderer_are_render_errors() -> None:
    with pytest.raises(RenderError, match="no webhook format 'xml'"):
        render("xml", RESULT)

    def broken(doc: dict[str, Any]) -> bytes:
        raise KeyError("status")

    with pytest.raises(RenderError, match="could not be made: KeyError"):
        render("b", RESULT, {"b": broken})
    with pytest.raises(RenderError, match="returned str, not bytes"):
        render("s", RESULT, {"s": lambda doc: "text"})


def test_a_renderer_of_the_table_is_called() -> None:
    assert render("j", RESULT, {"j": orjson.dumps}) == orjson.dumps(RESULT)


def test_the_key_s_own_secret_wins_then_the_setting_then_unsigned() -> None:
    s = Settings.from_env({"RUNSTREAM_CALLBACK_SECRET": "global"})
    keys = {"k1": "own-secret", "k2": None}
    secrets = Secrets(s, keys.get)
    assert secrets.secret_for("k1") == b"own-secret"
    assert secrets.secret_for("k2") == b"global"
    assert secrets.secret_for(None) == b"global"
    assert Secrets(Settings.from_env({})).secret_for("k1") == b""


def test_a_failing_key_store_falls_back_to_the_setting() -> None:
    def store(key_id: str) -> str:
        raise RuntimeError("key store down")

    s = Settings.from_env({"RUNSTREAM_CALLBACK_SECRET": "global"})
    assert Secrets(s, store).secret_for("k1") == b"global"
