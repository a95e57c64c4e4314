"""Errors internal to a runstream process: never sent to a client as they are.

They belong to the one tree rooted at :class:`~runstream.schemas.errors.RunstreamError`;
the wire errors a client is told about are in ``schemas/errors.py``. The HTTP
layer answers any of these with a generic ``500`` and logs it.
"""

from __future__ import annotations

from runstream.schemas.errors import RunstreamError


class ConfigurationError(RunstreamError):
    """A setting is missing, malformed or out of range; raised at start-up."""


class SandboxError(RunstreamError):
    """The sandbox itself failed; never the submitted program's fault."""


class BrokerLaunchError(RunstreamError):
    """The local Kafka broker could not be fetched, formatted or started."""
