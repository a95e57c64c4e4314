"""Sandbox backends behind one interface.

``base`` is the interface (``Sandbox``, ``Workspace``); ``factory`` picks the
configured backend. Each backend is a subpackage: ``bwrap/`` (bubblewrap, a per-run
cgroup, seccomp, the native launcher) and ``docker/`` (one container per execution,
a warm pool); neither imports the other (an import-linter contract). What both use
is here: ``environment`` (the programs' environment), ``rlimits``, ``cgroup``,
``supervision`` (limits, output caps, live stdin), ``scope`` (a worker's leftovers)
and ``versions`` (toolchain detection).
"""
