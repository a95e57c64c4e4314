"""The execution core: languages, verdicts, the executor and the sandbox backends."""
