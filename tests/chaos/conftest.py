"""The chaos suite's fixtures and its table.

The suite owns its broker (one for the package: the broker-restart row stops it) and
starts a fresh system — two ingresses, two workers with two slots each, real bwrap
sandboxes — for every row, so a row that breaks the system cannot spoil the next.
Each row's :class:`Ledger` becomes one line of the table printed at the end of the
run and written to ``.cache/chaos-table.md`` (or ``$RUNSTREAM_CHAOS_TABLE``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from runstream.services.broker import LocalBroker

from tests.chaos._harness import ROWS, Ledger, Row
from tests.conftest import running_broker
from tests.system import System, launch_system


@pytest.fixture(scope="package")
def chaos_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker of the chaos suite alone; rows may stop and restart it."""
    with running_broker(tmp_path_factory.mktemp("chaos-kafka")) as broker:
        yield broker


@pytest.fixture
def chaos_env() -> dict[str, str]:
    """RUNSTREAM_* settings of a row's system beyond the defaults (a module may override)."""
    return {}


@pytest.fixture
def chaos_system(chaos_broker: LocalBroker, chaos_env: dict[str, str],
                 tmp_path: Path) -> Iterator[System]:
    """A fresh runstream on the chaos broker: 2 ingresses, 2 workers x 2 slots."""
    logs = tmp_path / "logs"
    logs.mkdir()
    # Every run writes its events (not only those asked for): the faults meet the
    # heavier mode, as docs/events.md says.
    env = {"RUNSTREAM_EVENTS_PRODUCE": "always"} | chaos_env
    with launch_system(f"{chaos_broker.host}:{chaos_broker.port}", logs, ingresses=2,
                       workers=2, slots=2, extra_env=env) as running:
        yield running


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, object, object]:
    report = yield
    if call.when == "call" and isinstance(report, pytest.TestReport):
        item.stash[_OUTCOME] = report
    return report


_OUTCOME = pytest.StashKey[pytest.TestReport]()


@pytest.fixture
def ledger(request: pytest.FixtureRequest) -> Iterator[Callable[[str], Ledger]]:
    """Make the row's ledger(s); each becomes a line of the table, pass or fail."""
    made: list[Ledger] = []

    def make(fault: str) -> Ledger:
        made.append(Ledger(fault))
        return made[-1]

    yield make
    report = request.node.stash.get(_OUTCOME, None)
    verdict = "pass" if report is not None and report.passed else "FAIL"
    reason = ""
    if report is not None and report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        reason = (crash.message if crash is not None else str(report.longrepr)).splitlines()[0]
    for book in made:
        row = book.row()
        row.verdict = verdict
        if reason:
            row.note = "; ".join(x for x in (row.note, reason[:300]) if x)
        ROWS.append(row)


def render(rows: list[Row]) -> str:
    """The chaos table as Markdown, then each failed row's reason."""
    lines = ["| " + " | ".join(Row.HEADER) + " |", "|" + "---|" * len(Row.HEADER)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    notes = [f"- {r.fault}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    text = render(ROWS)
    terminalreporter.write_sep("=", "chaos table")
    terminalreporter.write(text)
    out = Path(os.environ.get("RUNSTREAM_CHAOS_TABLE")
               or terminalreporter.config.rootpath / ".cache" / "chaos-table.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    terminalreporter.write_line(f"(written to {out})")
