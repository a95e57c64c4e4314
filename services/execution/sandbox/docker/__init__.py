"""The Docker backend: one short-lived, hardened container per execution, a warm pool.

Its modules are its own (the engine client, the container, the exec protocol, the
host's view of a container, the pool and its demand, the snapshot); what it shares
with the bwrap backend is in the parent package.
"""

from runstream.services.execution.sandbox.docker.backend import (
    WORKER_LABEL,
    DockerSandbox,
    DockerWorkspace,
    docker_available,
)

__all__ = ["WORKER_LABEL", "DockerSandbox", "DockerWorkspace", "docker_available"]
