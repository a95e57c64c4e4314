"""Settings: typed, validated at start-up, documented."""

from __future__ import annotations

import pytest
from runstream.services.errors import ConfigurationError
from runstream.services.settings import Settings


def test_defaults_are_valid_and_fill_worker_identity() -> None:
    s = Settings.from_env({})
    assert s.worker_concurrency >= 1
    assert s.worker_id
    assert s.default_limits.wall_ms == 5000


def test_environment_is_typed() -> None:
    s = Settings.from_env({"RUNSTREAM_INGRESS_PORT": "9000", "RUNSTREAM_INGRESS_WAIT_S": "2.5"})
    assert s.ingress_port == 9000 and s.ingress_wait_s == 2.5


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"RUNSTREAM_INGRESS_PORT": "eighty"}, "expected a int"),
        ({"RUNSTREAM_SANDBOX_BACKEND": "chroot"}, "must be one of bwrap, docker"),
        ({"RUNSTREAM_WORKER_CONCURRENCY": "0"}, "must be >= 1"),
        ({"RUNSTREAM_INGRESS_REPLY_PARTITION": "8"}, "0..7"),
        ({"RUNSTREAM_DEFAULT_WALL_MS": "60000"}, "DEFAULT_WALL_MS is above"),
        ({"RUNSTREAM_LANGUAGES": " , "}, "LANGUAGES is empty"),
    ],
)
def test_bad_values_stop_start_up_with_the_variable_named(env: dict[str, str],
                                                         fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        Settings.from_env(env)


def test_every_setting_is_documented() -> None:
    table = Settings.markdown_table()
    assert "RUNSTREAM_BOOTSTRAP_SERVERS" in table
    for line in table.splitlines()[2:]:
        assert line.rstrip("|").split("|")[-1].strip(), line


def test_the_docs_document_every_setting() -> None:
    from pathlib import Path

    page = (Path(__file__).parents[3] / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert Settings.markdown_table() in page, "regenerate with `runstream settings`"


def test_a_kraft_cluster_id_never_starts_with_a_dash() -> None:
    # The storage tool's parser takes "-xyz" for an option; 1 id in 64 did that.
    from runstream.services.broker import _cluster_id

    ids = [_cluster_id() for _ in range(3000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
