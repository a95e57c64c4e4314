"""The local broker's configuration for a small host: what the settings write."""

from __future__ import annotations

from pathlib import Path

import pytest
from runstream.services.broker import jvm_flags, server_properties
from runstream.services.errors import ConfigurationError
from runstream.services.settings import Settings


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_thread_counts_come_from_the_settings_and_default_to_kafkas() -> None:
    props = _props(server_properties(Path("/d"), "127.0.0.1", 9092, Settings()))
    assert (props["num.network.threads"], props["num.io.threads"]) == ("3", "8")
    small = Settings.from_env({"RUNSTREAM_BROKER_NETWORK_THREADS": "1",
                               "RUNSTREAM_BROKER_IO_THREADS": "2"})
    props = _props(server_properties(Path("/d"), "127.0.0.1", 9092, small))
    assert (props["num.network.threads"], props["num.io.threads"]) == ("1", "2")


def test_the_single_controller_does_not_write_a_no_op_record_every_half_second() -> None:
    props = _props(server_properties(Path("/d"), "127.0.0.1", 9092))
    assert props["metadata.max.idle.interval.ms"] == "5000"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"  # one voter: no peer waits


def test_the_collector_is_a_setting_and_a_wrong_one_stops_start_up() -> None:
    assert jvm_flags(Settings()) == ["-XX:+UseG1GC"]
    assert jvm_flags(Settings.from_env({"RUNSTREAM_BROKER_GC": "serial"})) == ["-XX:+UseSerialGC"]
    with pytest.raises(ConfigurationError):
        Settings.from_env({"RUNSTREAM_BROKER_GC": "zgc"})
    with pytest.raises(ConfigurationError):
        Settings.from_env({"RUNSTREAM_BROKER_IO_THREADS": "0"})
