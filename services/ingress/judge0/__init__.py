"""Judge0 CE 1.13.1's HTTP API over runstream, under ``/judge0``.

The pure modules (``statuses``, ``tokens``, ``submission``, ``wire``,
``catalog``) map Judge0's wire format to runstream's requests and results and
back; ``routes`` is the thin Starlette layer. The authoritative description of
what Judge0 answers, and of what the official ``judge0`` Python SDK requires,
is ``compat/judge0-piston.md`` (sections A and B) in the shared documents.
"""
