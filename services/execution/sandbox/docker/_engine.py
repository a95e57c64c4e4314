"""The Docker engine as the docker backend talks to it: a client and threads of its own.

The SDK blocks; its calls, and the exec streams' readers and writers, run on a
thread pool of their own so that they never starve (nor are starved by) the
loop's default executor. Every SDK call is bounded and its failures become
:class:`~runstream.schemas.errors.SandboxError`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import docker.errors
from runstream.services.errors import SandboxError
from runstream.services.settings import Settings

T = TypeVar("T")


class DockerEngine:
    """A Docker client, its thread pool, and bounded calls through them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Each running phase holds two threads (its exec's reader and writer).
        self.pool = ThreadPoolExecutor(max_workers=4 * settings.worker_concurrency + 8,
                                       thread_name_prefix="runstream-docker")
        self._client: docker.DockerClient | None = None

    def connect(self) -> None:
        s = self.settings
        try:
            self._client = docker.DockerClient(base_url=s.sandbox_docker_url,
                                               timeout=int(s.sandbox_docker_timeout_s))
        except docker.errors.DockerException as e:
            raise SandboxError(f"cannot reach the Docker engine at {s.sandbox_docker_url}: "
                               f"{e}") from e

    @property
    def api(self) -> docker.APIClient:
        if self._client is None:
            raise SandboxError("DockerSandbox.start() was not called")
        return self._client.api

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking SDK call on the pool, bounded; docker errors become SandboxError."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self.pool, functools.partial(fn, *args, **kwargs)),
                self.settings.sandbox_docker_timeout_s + 5)
        except TimeoutError as e:
            raise SandboxError(f"the Docker engine did not answer {fn.__name__} in time") from e
        except docker.errors.ImageNotFound as e:
            raise SandboxError(
                f"a runtime image is missing ({e.explanation}); build it with "
                ".ci/build-images.sh or services/images/<language>.Dockerfile") from e
        except docker.errors.DockerException as e:
            raise SandboxError(f"docker {fn.__name__} failed: {e}") from e

    def in_thread(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """A blocking call of ours (a stream's reader, a cgroup kill) on the pool."""
        return asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.pool.shutdown(wait=False, cancel_futures=True)
