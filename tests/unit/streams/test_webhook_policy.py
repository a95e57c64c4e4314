"""Webhook retries (backoff with jitter, bounds) and which addresses a webhook may reach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from runstream.services.settings import Settings
from runstream.streams.webhook_policy import RetryPolicy, address_allowed

POLICY = RetryPolicy(max_attempts=6, max_age_s=3600, base_s=2.0, cap_s=20.0)
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_the_steps_double_up_to_the_cap() -> None:
    fullest = [POLICY.delay_s(n, rand=0.999999) for n in range(1, 7)]
    assert [round(d) for d in fullest] == [2, 4, 8, 16, 20, 20]


@pytest.mark.parametrize("failures", range(1, 8))
def test_jitter_stays_between_half_and_all_of_the_step(failures: int) -> None:
    step = min(20.0, 2.0 * 2 ** (failures - 1))
    assert POLICY.delay_s(failures, rand=0.0) == step / 2
    assert step / 2 <= POLICY.delay_s(failures, rand=0.5) <= step
    assert POLICY.delay_s(failures, rand=0.0) < POLICY.delay_s(failures, rand=0.9)


def test_the_next_attempt_follows_the_last_one_by_the_delay() -> None:
    at, reason = POLICY.next_attempt(1, T0, T0, rand=0.0)
    assert reason is None and at == T0 + timedelta(seconds=1)


def test_it_gives_up_after_the_last_attempt() -> None:
    at, reason = POLICY.next_attempt(6, T0, T0, rand=0.0)
    assert at is None and reason == "gave up after 6 attempts"


def test_it_gives_up_when_the_next_attempt_would_be_too_old() -> None:
    last = T0 + timedelta(seconds=3599)
    at, reason = POLICY.next_attempt(2, T0, last, rand=0.0)
    assert at is None and reason is not None and "3600s" in reason


def test_the_policy_comes_from_the_settings() -> None:
    s = Settings.from_env({"RUNSTREAM_CALLBACK_MAX_ATTEMPTS": "3",
                           "RUNSTREAM_CALLBACK_BACKOFF_S": "0.5"})
    p = RetryPolicy.from_settings(s)
    assert (p.max_attempts, p.base_s, p.cap_s) == (3, 0.5, s.callback_backoff_max_s)


@pytest.mark.parametrize(("address", "public"), [
    ("93.184.215.14", True),
    ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
    ("127.0.0.1", False),
    ("10.1.2.3", False),
    ("172.16.0.1", False),
    ("192.168.1.1", False),
    ("169.254.169.254", False),  # cloud metadata
    ("100.64.0.1", False),  # carrier-grade NAT
    ("0.0.0.0", False),
    ("224.0.0.1", False),
    ("255.255.255.255", False),
    ("::1", False),
    ("::", False),
    ("fe80::1%eth0", False),
    ("fd00::1", False),
    ("::ffff:127.0.0.1", False),  # IPv4 written as IPv6
    ("::ffff:93.184.215.14", True),
    ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
    ("not an address", False),
])
def test_only_public_addresses_pass_when_private_ones_are_off(address: str,
                                                              public: bool) -> None:
    assert address_allowed(address, allow_private=False) is public
    assert address_allowed(address, allow_private=True)


def test_the_backoff_must_not_exceed_its_cap() -> None:
    from runstream.services.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="CALLBACK_BACKOFF_S"):
        Settings.from_env({"RUNSTREAM_CALLBACK_BACKOFF_S": "30",
                           "RUNSTREAM_CALLBACK_BACKOFF_MAX_S": "10"})


@pytest.mark.parametrize(("raw", "value"), [("false", False), ("0", False), ("off", False),
                                            ("TRUE", True), ("yes", True)])
def test_the_private_setting_is_a_boolean(raw: str, value: bool) -> None:
    assert Settings.from_env({"RUNSTREAM_CALLBACK_ALLOW_PRIVATE": raw}).callback_allow_private \
        is value


def test_a_boolean_setting_refuses_other_words() -> None:
    from runstream.services.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="CALLBACK_ALLOW_PRIVATE='maybe'"):
        Settings.from_env({"RUNSTREAM_CALLBACK_ALLOW_PRIVATE": "maybe"})


def test_webhooks_cannot_be_retried_longer_than_their_jobs_are_kept() -> None:
    from runstream.services.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="CALLBACK_MAX_AGE_S is longer"):
        Settings.from_env({"RUNSTREAM_CALLBACK_MAX_AGE_S": "7200",
                           "RUNSTREAM_RESULTS_RETENTION_MS": "3600000"})
