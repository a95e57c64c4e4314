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


def test_judge0_is_looked_up_lazily_by_its_import_path() -> None:
    assert RENDERERS["judge0"] == "runstream.services.ingress.judge0.wire:callback_body"


def test_a_format_whose_module_is_missing_fails_with_a_clear_reason() -> None:
    table: dict[str, Any] = {"judge0": "runstream.services.ingress.nowhere.wire:callback_body"}
    with pytest.raises(RenderError, match=r"'judge0' webhook format is not available.*nowhere"):
        render("judge0", RESULT, table)


def test_a_module_without_the_function_fails_with_a_clear_reason() -> None:
    with pytest.raises(RenderError, match="orjson:no_such_renderer is missing"):
        render("x", RESULT, {"x": "orjson:no_such_renderer"})


def test_an_unknown_format_and_a_failing_renderer_are_render_errors() -> None:
    with pytest.raises(RenderError, match="no webhook format 'xml'"):
        render("xml", RESULT)

    def broken(doc: dict[str, Any]) -> bytes:
        raise KeyError("status")

    with pytest.raises(RenderError, match="could not be made: KeyError"):
        render("b", RESULT, {"b": broken})
    with pytest.raises(RenderError, match="returned str, not bytes"):
        render("s", RESULT, {"s": lambda doc: "text"})


def test_a_renderer_found_by_path_is_called() -> None:
    assert render("j", RESULT, {"j": "orjson:dumps"}) == orjson.dumps(RESULT)


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
