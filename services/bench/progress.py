"""Live progress of a run on the terminal (rich), refreshed a few times a second."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator

from rich.console import Console
from rich.live import Live
from rich.table import Table
from runstream.services.bench.histogram import LatencyHistogram
from runstream.services.bench.runner import Runner
from runstream.services.bench.sample import Sample

WINDOW = 500  # latency percentiles of the last answers


class Progress:
    """Counts answers as they arrive and renders a one-table summary."""

    def __init__(self, runner: Runner, title: str, planned: int | None,
                 duration_s: float | None) -> None:
        self.runner = runner
        self.title = title
        self.planned = planned
        self.duration_s = duration_s
        self.verdicts: Counter[str] = Counter()
        self.errors = 0
        self.unexpected = 0
        self.recent: deque[float] = deque(maxlen=WINDOW)
        self.done_times: deque[float] = deque(maxlen=5000)
        runner.on_sample = self.add

    def add(self, sample: Sample) -> None:
        if sample.completed:
            self.verdicts[str(sample.status)] += 1
            if sample.latency_ms is not None:
                self.recent.append(sample.latency_ms)
            self.done_times.append(sample.done_s or 0.0)
        else:
            self.errors += 1
        if sample.unexpected:
            self.unexpected += 1

    def render(self) -> Table:
        now = self.runner.now()
        rate = sum(1 for t in self.done_times if t > now - 5) / min(5.0, max(now, 1e-3))
        hist = LatencyHistogram(self.recent)
        table = Table(title=self.title, show_header=True, header_style="bold")
        for col in ("elapsed", "sent", "in flight", "answers/s (5 s)", "p50 ms", "p99 ms",
                    "errors", "unexpected", "verdicts"):
            table.add_column(col, justify="right")
        total = f"/{self.planned}" if self.planned else ""
        elapsed = f"{now:5.1f}s" + (f"/{self.duration_s:g}s" if self.duration_s else "")
        table.add_row(elapsed, f"{self.runner.sent}{total}", str(self.runner.in_flight),
                      f"{rate:.2f}", f"{hist.percentile(50):.0f}", f"{hist.percentile(99):.0f}",
                      str(self.errors), str(self.unexpected),
                      " ".join(f"{k}={v}" for k, v in sorted(self.verdicts.items())))
        return table


@contextlib.asynccontextmanager
async def live(progress: Progress, enabled: bool) -> AsyncIterator[None]:
    """Show ``progress`` while the body runs (only on a terminal, when ``enabled``)."""
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield
        return
    with Live(progress.render(), console=console, refresh_per_second=4, transient=False) as view:
        async def refresh() -> None:
            while True:
                await asyncio.sleep(0.25)
                view.update(progress.render())

        task = asyncio.create_task(refresh())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            view.update(progress.render())
