"""The bubblewrap backend: namespaces, a per-run cgroup, rlimits, seccomp, a native launcher.

Its modules are its own (the command line, the launcher, the mounts, the seccomp
filter, the run's supervision, the workspace snapshot); what it shares with the
docker backend is in the parent package.
"""

from runstream.services.execution.sandbox.bwrap.backend import BwrapSandbox, BwrapWorkspace

__all__ = ["BwrapSandbox", "BwrapWorkspace"]
