"""Piston v2-compatible API under ``/api/v2`` (engineer-man/piston, api/src/api/v2.js).

The pure modules (``runtimes``, ``request``, ``response``, ``errors``, ``limits``,
``connect``) map between Piston's wire format and runstream's requests, results and
events; ``routes`` is the thin Starlette layer that reads bodies and waits for
results through the ingress, ``session`` the interactive WebSocket's I/O.
The spec followed is ``compat/judge0-piston.md`` section C; docs/piston.md
lists where runstream differs.
"""
