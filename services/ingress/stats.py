"""The dashboard's numbers, from what an ingress already sees (pure: no I/O, no clock).

Every ingress follows the whole results topic, so each one can tell how the whole
system is doing, not only its own share: :class:`Traffic` files each result under
the second it *finished* (not the second it was read: an ingress that starts reads
retention, and a result read late still belongs to its own second), and answers
throughput, latency percentiles and the verdict mix over a window. The worker
group's members, their assignments and the lag per partition come from the group
watch; :func:`workers_view` and :func:`backlog_view` shape them.

Everything read here was written by someone else (a result's fields, a worker's
announcement): odd types, missing fields, clocks in the future and absurd numbers
are skipped or clamped, never an error.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from runstream.schemas.models import Status

#: Seconds of history kept and drawn (the charts' width).
HISTORY_S = 120
#: Seconds the latency percentiles and the verdict totals are taken over.
WINDOW_S = 60
#: Seconds the headline throughput is averaged over.
RATE_S = 10
#: Latency samples kept per second (a uniform reservoir beyond that).
SAMPLES_PER_S = 2000
#: Above this a duration is not a latency but a broken clock: left out.
MAX_LATENCY_MS = 24 * 3600 * 1000
VERDICTS: tuple[str, ...] = tuple(s.value for s in Status)
OTHER = "other"
_FINISHED = re.compile(rb'"finished"\s*:\s*"([^"]{10,40})"')


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of sorted values, nearest rank; None when empty."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _epoch(value: Any) -> float | None:
    """Seconds since the epoch of an ISO-8601 instant with an offset; None if it is not one."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        return None
    return stamp.timestamp()


def _duration_ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    ms = (end - start) * 1000
    return max(0.0, ms) if ms <= MAX_LATENCY_MS else None  # a skewed clock can go below 0


@dataclass
class _Second:
    """What finished within one second."""

    count: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    #: (enqueued -> finished, started -> finished) in ms; a uniform sample past the cap.
    samples: list[tuple[float | None, float | None]] = field(default_factory=list)
    offered: int = 0

    def latencies(self) -> list[float]:
        return sorted(lat for lat, _ in self.samples if lat is not None)


class Traffic:
    """Results bucketed by the second they finished in, over the last ``history_s`` seconds."""

    def __init__(self, *, history_s: int = HISTORY_S, window_s: int = WINDOW_S,
                 rate_s: int = RATE_S, samples_per_s: int = SAMPLES_PER_S) -> None:
        self.history_s = history_s
        self.window_s = min(window_s, history_s)
        self.rate_s = min(rate_s, history_s)
        self.samples_per_s = samples_per_s
        self.seconds: dict[int, _Second] = {}
        self.counted = 0  # results filed since this process started
        self._random = random.Random(0)  # reservoir sampling; seeded: same input, same answer
        self._memo: tuple[tuple[int, int], dict[str, Any]] | None = None

    def add(self, value: bytes, now: float) -> None:
        """File one encoded result read from the results topic at wall time ``now``."""
        oldest = now - self.history_s
        # An ingress that starts reads the whole retention: find the finishing time
        # with a regex first and skip what is too old without parsing it. (A client's
        # metadata can fool the regex only into skipping that client's own result.)
        found = _FINISHED.findall(value)
        early = _epoch(found[-1].decode("ascii", "replace")) if found else None
        if early is not None and early < oldest - 1:
            return
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            return  # not a result: nothing to file
        if isinstance(doc, dict):
            self.file(doc, now)

    def file(self, doc: Mapping[str, Any], now: float) -> None:
        """File one decoded result."""
        stamps = doc.get("timestamps")
        stamps = stamps if isinstance(stamps, dict) else {}
        finished = _epoch(stamps.get("finished"))
        # Without a time of its own it counts as finished when read; from the future, now.
        at = now if finished is None else min(finished, now)
        if at < now - self.history_s:
            return
        second = self.seconds.setdefault(int(at), _Second())
        status = doc.get("status")
        second.count += 1
        second.verdicts[status if isinstance(status, str) and status in VERDICTS else OTHER] += 1
        self.counted += 1
        latency = _duration_ms(_epoch(stamps.get("enqueued")), finished)
        run = _duration_ms(_epoch(stamps.get("started")), finished)
        if latency is not None or run is not None:
            self._sample(second, latency, run)
        self._forget(now)

    def _sample(self, second: _Second, latency: float | None, run: float | None) -> None:
        second.offered += 1
        if len(second.samples) < self.samples_per_s:
            second.samples.append((latency, run))
            return
        slot = self._random.randrange(second.offered)  # reservoir: every one equally likely
        if slot < self.samples_per_s:
            second.samples[slot] = (latency, run)

    def _forget(self, now: float) -> None:
        oldest = int(now) - self.history_s
        if len(self.seconds) > self.history_s + 1 or min(self.seconds, default=oldest) < oldest:
            for key in [k for k in self.seconds if k < oldest]:
                del self.seconds[key]

    def snapshot(self, now: float) -> dict[str, Any]:
        """Throughput, latency percentiles, verdicts and their per-second series at ``now``."""
        # Every open dashboard asks each second: compute once per second and change.
        key = (int(now), self.counted)
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1]
        self._memo = (key, self._snapshot(now))
        return self._memo[1]

    def _snapshot(self, now: float) -> dict[str, Any]:
        self._forget(now)
        last = int(now)
        span = range(last - self.history_s + 1, last + 1)
        empty = _Second()
        buckets = [self.seconds.get(t, empty) for t in span]
        # The current second is still filling: the rate is taken over the full seconds
        # before it, so that it does not dip at the start of every second.
        full = buckets[-self.rate_s - 1:-1]
        window = buckets[-self.window_s:]
        latency = sorted(lat for b in window for lat, _ in b.samples if lat is not None)
        run = sorted(r for b in window for _, r in b.samples if r is not None)
        verdicts: Counter[str] = Counter()
        for b in window:
            verdicts.update(b.verdicts)
        per_second = [b.latencies() for b in buckets]
        names = [v for v in (*VERDICTS, OTHER) if any(b.verdicts.get(v) for b in buckets)]
        return {
            "throughput": {"per_s": round(sum(b.count for b in full) / max(1, len(full)), 3),
                           "over_s": len(full)},
            "latency_ms": {"p50": _round(percentile(latency, 0.50)),
                           "p99": _round(percentile(latency, 0.99)),
                           "run_p50": _round(percentile(run, 0.50)),
                           "run_p99": _round(percentile(run, 0.99)),
                           "samples": len(latency), "over_s": self.window_s},
            "verdicts": dict(verdicts.most_common()),
            "results": {"in_window": sum(b.count for b in window), "counted": self.counted},
            "series": {
                "t": list(span),
                "results": [b.count for b in buckets],
                "p50_ms": [_round(percentile(lat, 0.50)) for lat in per_second],
                "p99_ms": [_round(percentile(lat, 0.99)) for lat in per_second],
                "verdicts": {v: [b.verdicts.get(v, 0) for b in buckets] for v in names},
            },
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _text(value: Any, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _slots(announcement: Mapping[str, Any]) -> int | None:
    value = announcement.get("concurrency")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return max(0, min(int(value), 1_000_000))


def worker_id(client_id: str, prefix: str, announced: Iterable[str]) -> str | None:
    """The announced worker a group member's client id names, if any."""
    if not client_id.startswith(prefix):
        return None
    wid = client_id[len(prefix):]
    names = set(announced)
    if wid in names:
        return wid
    # A client library may append its own suffix to the id the worker gave it.
    return next((a for a in sorted(names, key=len, reverse=True)
                 if wid.startswith(a + "-")), None)


def workers_view(members: Sequence[str], assigned: Mapping[str, Sequence[int]],
                 announcements: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """One row per worker in the group: slots, languages and versions, partitions held."""
    rows = []
    for cid in sorted(set(members)):
        if not cid.startswith(prefix):
            continue
        wid = worker_id(cid, prefix, announcements)
        doc = announcements.get(wid) if wid is not None else None
        doc = doc if isinstance(doc, dict) else {}
        languages = doc.get("languages")
        pairs = languages.items() if isinstance(languages, dict) else ()
        # Names cut to 64 characters may collide: sort by name alone, never by version.
        served = sorted(((name[:64], _text(version, 64)) for name, version in pairs
                         if isinstance(name, str)), key=lambda item: item[0])
        langs = [{"name": name, "version": version} for name, version in served]
        rows.append({
            "id": wid or cid[len(prefix):],
            "announced": bool(doc),
            "backend": _text(doc.get("backend"), 64),
            "slots": _slots(doc),
            "started": _text(doc.get("started"), 64),
            "languages": langs[:500],
            "partitions": sorted(p for p in assigned.get(cid, ()) if isinstance(p, int)),
        })
    return rows


def backlog_view(lags: Mapping[tuple[str, int], int], requests_topic: str,
                 owners: Mapping[int, str]) -> dict[str, Any]:
    """Requests waiting per partition: every partition of the requests topic (owner
    named), and the partitions of other request topics (per language) that have any."""
    parts = []
    for (topic, partition), lag in sorted(lags.items()):
        if topic == requests_topic or lag > 0:
            parts.append({"topic": topic, "partition": partition, "lag": max(0, lag),
                          "owner": owners.get(partition) if topic == requests_topic else None})
    return {"total": sum(max(0, lag) for lag in lags.values()), "partitions": parts}


def owners_of(workers: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """Partition of the requests topic -> the worker holding it."""
    return {p: str(w["id"]) for w in workers for p in w["partitions"]}
