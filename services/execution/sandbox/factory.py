"""Choose the sandbox backend from the settings."""

from __future__ import annotations

from runstream.services.execution.sandbox.base import Sandbox
from runstream.services.settings import Settings


def create_sandbox(settings: Settings) -> Sandbox:
    """The configured backend; imported lazily so each needs only its own dependencies."""
    if settings.sandbox_backend == "docker":
        from runstream.services.execution.sandbox.docker import DockerSandbox

        return DockerSandbox(settings)
    from runstream.services.execution.sandbox.bwrap import BwrapSandbox

    return BwrapSandbox(settings)
