"""This server's Judge0 configuration: runstream's limits in Judge0's units.

Judge0 gives times in seconds (floats) and sizes in kilobytes; runstream's
settings are milliseconds and MiB. Defaults and maxima come from the settings,
so ``/config_info`` reports what this server really enforces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runstream.services.settings import Settings

JUDGE0_VERSION = "1.13.1"
MAX_BATCH = 20  # MAX_SUBMISSION_BATCH_SIZE
MAX_RUNS = 20  # MAX_NUMBER_OF_RUNS: each run is one test of the request (<= 64)
MAX_TEXT_OPTION = 512  # compiler_options, command_line_arguments
# Judge0's stack limits: checked and echoed, not applied on their own (the stack
# counts within the memory limit of the run's cgroup).
STACK_LIMIT_KB = 64000
MAX_STACK_LIMIT_KB = 128000
MAX_CPU_EXTRA_TIME_S = 5.0
# Reported for clients that read it; admission is bounded in seconds of queued
# work (RUNSTREAM_INGRESS_MAX_BACKLOG_S, answered 429), not in submissions.
MAX_QUEUE_SIZE = 100
MAX_EXTRACT_SIZE_KB = 10240


@dataclass(frozen=True)
class Judge0Config:
    """Defaults and maxima of a submission's limits, in Judge0's units."""

    cpu_time_limit: float
    max_cpu_time_limit: float
    wall_time_limit: float
    max_wall_time_limit: float
    memory_limit: int
    max_memory_limit: int
    max_processes_and_or_threads: int
    max_max_processes_and_or_threads: int
    max_file_size: int
    max_max_file_size: int
    callbacks_max_tries: int = 3
    callbacks_timeout: float = 5.0

    @classmethod
    def from_settings(cls, s: Settings) -> Judge0Config:
        return cls(
            cpu_time_limit=s.default_cpu_ms / 1000, max_cpu_time_limit=s.max_cpu_ms / 1000,
            wall_time_limit=s.default_wall_ms / 1000, max_wall_time_limit=s.max_wall_ms / 1000,
            memory_limit=s.default_memory_mb * 1024, max_memory_limit=s.max_memory_mb * 1024,
            max_processes_and_or_threads=s.default_processes,
            max_max_processes_and_or_threads=s.max_processes,
            max_file_size=s.default_file_size_kb, max_max_file_size=s.max_file_size_kb,
            callbacks_max_tries=s.callback_max_attempts,
            callbacks_timeout=s.callback_timeout_s,
        )


def config_info(c: Judge0Config) -> dict[str, Any]:
    """The body of ``GET /config_info``: Judge0's 39 keys, in its order."""
    return {
        "maintenance_mode": False,
        "enable_wait_result": True,
        # Compile commands are the registry's; flags from the client are not taken.
        "enable_compiler_options": False,
        "allowed_languages_for_compile_options": [],
        "enable_command_line_arguments": True,
        "enable_submission_delete": False,
        # callback_url is carried as the native request's ``callback`` (docs/webhooks.md).
        "enable_callbacks": True,
        "callbacks_max_tries": c.callbacks_max_tries,
        "callbacks_timeout": c.callbacks_timeout,
        "enable_additional_files": False,
        "max_queue_size": MAX_QUEUE_SIZE,
        "cpu_time_limit": c.cpu_time_limit,
        "max_cpu_time_limit": c.max_cpu_time_limit,
        "cpu_extra_time": 0.0,
        "max_cpu_extra_time": MAX_CPU_EXTRA_TIME_S,
        "wall_time_limit": c.wall_time_limit,
        "max_wall_time_limit": c.max_wall_time_limit,
        "memory_limit": c.memory_limit,
        "max_memory_limit": c.max_memory_limit,
        "stack_limit": STACK_LIMIT_KB,
        "max_stack_limit": MAX_STACK_LIMIT_KB,
        "max_processes_and_or_threads": c.max_processes_and_or_threads,
        "max_max_processes_and_or_threads": c.max_max_processes_and_or_threads,
        "enable_per_process_and_thread_time_limit": False,
        "allow_enable_per_process_and_thread_time_limit": False,
        "enable_per_process_and_thread_memory_limit": False,
        "allow_enable_per_process_and_thread_memory_limit": False,
        "max_file_size": c.max_file_size,
        "max_max_file_size": c.max_max_file_size,
        "number_of_runs": 1,
        "max_number_of_runs": MAX_RUNS,
        "redirect_stderr_to_stdout": False,
        "max_extract_size": MAX_EXTRACT_SIZE_KB,
        "enable_batched_submissions": True,
        "max_submission_batch_size": MAX_BATCH,
        "submission_cache_duration": 0.0,
        "use_docs_as_homepage": False,
        "allow_enable_network": False,
        "enable_network": False,
    }


def about() -> dict[str, str]:
    """The body of ``GET /about``; the SDK picks its language-id table by ``version``."""
    return {
        "version": JUDGE0_VERSION,
        "homepage": "https://runstream.dev",
        "source_code": "https://runstream.dev",
        "maintainer": "runstream (a Judge0 CE 1.13.1-compatible API)",
    }
