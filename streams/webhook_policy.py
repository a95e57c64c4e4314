"""When a webhook is tried again, when it is given up, and where it may go: pure rules.

No I/O here: the deliverer (:mod:`runstream.streams.webhook_jobs` and the
ingress's ``webhooks``) asks these functions and does what they say.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from runstream.services.settings import Settings


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by a number of attempts and an age."""

    max_attempts: int
    max_age_s: float
    base_s: float
    cap_s: float

    @classmethod
    def from_settings(cls, s: Settings) -> RetryPolicy:
        return cls(s.callback_max_attempts, s.callback_max_age_s, s.callback_backoff_s,
                   s.callback_backoff_max_s)

    def delay_s(self, failures: int, rand: float) -> float:
        """The wait after the ``failures``-th failed attempt; ``rand`` is uniform in [0, 1).

        base, 2·base, 4·base... up to the cap, each drawn between half and all of
        it ("equal jitter"): receivers that failed together are not retried in step,
        and no wait is shorter than half its step.
        """
        step = min(self.cap_s, self.base_s * 2.0 ** max(0, failures - 1))
        return step / 2 + step / 2 * min(max(rand, 0.0), 1.0)

    def next_attempt(self, failures: int, created: datetime, last: datetime,
                     rand: float) -> tuple[datetime | None, str | None]:
        """(when to try again, None) or (None, why it is given up) after ``failures`` failures."""
        if failures >= self.max_attempts:
            return None, f"gave up after {failures} attempts"
        at = last + timedelta(seconds=self.delay_s(failures, rand))
        if at > created + timedelta(seconds=self.max_age_s):
            return None, (f"gave up: the next attempt would be more than "
                          f"{self.max_age_s:g}s after the result")
        return at, None


def address_allowed(address: str, allow_private: bool) -> bool:
    """Whether a webhook may connect to ``address`` (an IP, as DNS resolved it).

    With ``allow_private`` off only globally routable unicast addresses pass:
    not loopback, private (RFC 1918, ULA), link-local (cloud metadata at
    169.254.169.254), shared (100.64/10), multicast, reserved or unspecified,
    including IPv4 written as IPv6 (``::ffff:127.0.0.1``).
    """
    if allow_private:
        return True
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    return ip.is_global and not ip.is_multicast
