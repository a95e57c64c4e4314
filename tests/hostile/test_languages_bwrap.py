"""Every registered language runs hello-world and reads stdin through the bwrap backend."""

from __future__ import annotations

import pytest
from runstream.services.execution.sandbox.bwrap import BwrapSandbox

from tests.programs import CASES, ECHO

from .conftest import REGISTRY, run_code

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(120)]

def test_every_language_has_a_program() -> None:
    # The twelve first languages here; every language in tests/language_cases.toml
    # (tests/hostile/test_language_matrix.py).
    assert set(ECHO) <= set(REGISTRY.names())
    assert set(CASES) == set(REGISTRY.names())


@pytest.mark.parametrize("name", sorted(ECHO))
async def test_hello_and_stdin(sandbox: BwrapSandbox, name: str) -> None:
    r = await run_code(sandbox, name, ECHO[name], stdin=b"world\n")
    assert (r.exit_code, r.signal, r.stdout) == (0, None, b"hello world\n"), r
    assert r.time_limit is None and not r.oom_killed
    assert 0 < r.memory_kb < 256 * 1024
