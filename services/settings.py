"""All configuration, read from ``RUNSTREAM_*`` environment variables.

This is the only module that reads the environment. Each setting is typed and
documented; :meth:`Settings.from_env` validates them all at start-up so a bad
value stops the process with a message instead of failing on first use.
``runstream settings`` prints the table that docs/configuration.md shows.

Why not pydantic-settings (weighed in issue 21): the parsing here is about 50
lines (``from_env``, ``_convert``, the bounds loop of ``validate``); the rest is
the list of settings, which would be as long as ``Field(...)`` declarations, and
the cross-setting checks, which would stay hand-written as a model validator.
What it would add: its errors name the field, not the variable a person sets
(``ingress_port: Input should be a valid integer``, not
``RUNSTREAM_INGRESS_PORT='eighty': expected a int``), so a translation layer;
it takes ``y``/``t`` as true and refuses an empty optional number, both unlike
today; ``from_env(mapping, **overrides)`` and the 20-odd ``dataclasses.replace``
copies of a frozen dataclass would need another source class and ``model_copy``
(which does not validate); and importing it costs every ``runstream`` process
about 0.4 s on a 2-core machine (this module imports in under 0.1 s).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from runstream.schemas.models import Limits
from runstream.services.errors import ConfigurationError

PREFIX = "RUNSTREAM_"


def _setting(default: Any, doc: str, *, low: int | float | None = None,
             choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"doc": doc, "low": low, "choices": choices})


def _default_concurrency() -> int:
    return os.cpu_count() or 1


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class Settings:
    """Typed, validated configuration shared by every runstream process."""

    # -- Kafka ---------------------------------------------------------------
    bootstrap_servers: str = _setting("127.0.0.1:9092", "Kafka bootstrap servers, comma-separated.")
    requests_topic: str = _setting("runstream.requests", "Topic of execution requests.")
    requests_partitions: int = _setting(
        12, "Partitions of the requests topic (at creation).", low=1)
    language_topic_partitions: int = _setting(
        2, "Partitions of each language's own requests topic (<requests topic>.<language>), "
        "where a worker forwards a request whose language it does not run.", low=1)
    replies_topic: str = _setting("runstream.replies", "Topic of replies to ingress instances.")
    replies_partitions: int = _setting(
        8, "Partitions of the replies topic (one per ingress).", low=1)
    results_topic: str = _setting("runstream.results", "Compacted topic of every result, by id.")
    results_partitions: int = _setting(12, "Partitions of the results topic.", low=1)
    workers_topic: str = _setting(
        "runstream.workers", "Compacted topic where each worker announces its languages.")
    results_retention_ms: int = _setting(
        7 * 24 * 3600 * 1000, "How long results stay readable by GET (topic retention).", low=60000)
    message_max_bytes: int = _setting(
        8 * 1024 * 1024, "Largest Kafka message (requests and results); topic max.message.bytes.",
        low=1024 * 1024)
    topics_replication_factor: int = _setting(
        1, "Replication factor of every topic `runstream topics` creates (3 in the compose "
        "cluster: one Kafka node may die).", low=1)
    topics_min_insync_replicas: int = _setting(
        1, "min.insync.replicas of every topic `runstream topics` creates: replicas an "
        "acks=all write needs (2 in the compose cluster).", low=1)
    request_timeout_s: float = _setting(
        2.0, "Bound on one broker call (produce, metadata) before giving up with 503.", low=0.1)
    kafka_security_protocol: str = _setting(
        "PLAINTEXT", "How clients reach Kafka (a managed Kafka usually wants SASL_SSL).",
        choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"))
    kafka_sasl_mechanism: str = _setting(
        "PLAIN", "SASL mechanism when the protocol is SASL_*.",
        choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"))
    kafka_sasl_username: str = _setting("", "SASL user name.")
    kafka_sasl_password: str = _setting("", "SASL password.")
    kafka_ssl_cafile: str = _setting(
        "", "CA bundle that signs the brokers' certificates (SSL/SASL_SSL); default: system CAs.")
    kafka_ssl_certfile: str = _setting(
        "", "Client certificate (PEM) for brokers that authenticate clients by TLS (mTLS).")
    kafka_ssl_keyfile: str = _setting(
        "", "Private key (PEM) of the client certificate; default: in the certificate file.")

    # -- Local broker (runstream broker) ---------------------------------------
    broker_kafka_version: str = _setting(
        "4.1.1", "Apache Kafka version the local broker fetches from Maven Central.")
    broker_cache_dir: str = _setting(
        "~/.cache/runstream", "Where the local broker's jars are cached (fetched once).")
    broker_data_dir: str = _setting(
        "~/.local/share/runstream/kafka", "KRaft storage directory of the local broker.")
    broker_heap_mb: int = _setting(512, "Java heap of the local broker.", low=128)
    broker_network_threads: int = _setting(
        3, "Kafka's num.network.threads of the local broker (threads reading and writing "
        "client connections); Kafka's default.", low=1)
    broker_io_threads: int = _setting(
        8, "Kafka's num.io.threads of the local broker (threads handling requests); Kafka's "
        "default.", low=1)
    broker_gc: str = _setting(
        "g1", "Garbage collector of the local broker's JVM (serial: no concurrent GC threads "
        "while idle, but longer young pauses; see docs/speed.md).",
        choices=("g1", "serial", "parallel"))
    broker_start_timeout_s: float = _setting(
        60.0, "How long to wait for the local broker to answer metadata requests.", low=1)

    # -- Worker --------------------------------------------------------------
    worker_group: str = _setting("runstream-workers", "Consumer group of the workers.")
    worker_concurrency: int = _setting(
        None, "Parallel executions per worker; default: number of cores.", low=1)
    worker_id: str = _setting(None, "Name reported in results; default: host-pid.")
    worker_fetch_max_wait_ms: int = _setting(
        500, "Max time the broker holds a worker's empty fetch of requests. A request "
        "ends the wait at once, so this sets only how often an idle worker asks.", low=0)
    worker_session_timeout_s: float = _setting(
        6.0, "Consumer group session timeout: how fast a dead worker's partitions move.", low=1)
    worker_heartbeat_s: float = _setting(
        1.0, "Consumer group heartbeat interval (well under a third of the session timeout).",
        low=0.1)
    worker_commit_interval_s: float = _setting(
        0.5, "How often a worker commits processed offsets.", low=0.05)
    worker_drain_s: float = _setting(
        20.0, "On SIGTERM a worker takes no new request and lets running ones finish this long; "
        "runs still going are then killed and left to another worker. A second signal exits "
        "at once.", low=0)
    worker_redelivery_check_s: float = _setting(
        120.0, "A request read again after its partition moved may have been answered by "
        "its previous owner; the new owner runs it only once the results topic says it was "
        "not. While the results cannot be read (a broker node down, a leader election) it "
        "keeps asking, this long at most, then runs it.", low=0)
    worker_publish_attempt_s: float = _setting(
        10.0, "Bound on one attempt to store a result; transient failures are retried "
        "(outside the execution slots) until stored or the worker stops.", low=0.1)
    dead_letter_topic: str = _setting(
        "runstream.dead", "Where a worker parks a record it cannot answer at all, with the "
        "reason in its headers, so that the partition moves on.")

    # -- Ingress -------------------------------------------------------------
    ingress_host: str = _setting("127.0.0.1", "Address the HTTP ingress binds.")
    ingress_port: int = _setting(8080, "Port the HTTP ingress binds.", low=0)
    ingress_reply_partition: int | None = _setting(
        None, "Override: the replies partition this ingress reads (unique per instance). "
        "Default: none; each ingress obtains replies partitions by itself, as a member of "
        "the consumer group RUNSTREAM_INGRESS_GROUP, so identical ingresses can be scaled.",
        low=0)
    ingress_group: str = _setting(
        "runstream-ingresses", "Consumer group of the ingress instances on the replies topic: "
        "it shares the replies partitions among them (no per-instance setting).")
    ingress_wait_s: float = _setting(
        60.0, "How long POST /v1/executions waits for the result before answering 202.", low=0)
    ingress_max_body_bytes: int = _setting(
        1024 * 1024, "Largest accepted request body; larger gets 413.", low=1024)
    ingress_results_cache: int = _setting(
        10000, "Most results kept in memory per process (ingress, worker) for GET and "
        "idempotent retries; older ones are read back from Kafka through the index.", low=1)
    results_cache_mb: int = _setting(
        64, "Bytes of recent results kept in memory per process (with the count above).", low=1)
    index_dir: str = _setting(
        "/tmp/runstream-index", "Where each process keeps its on-disk index of the results "
        "topic (execution id to partition and offset); it survives restarts.")
    ingress_deadline_s: float = _setting(
        60.0, "Deadline given to an HTTP request that has none: a worker answers `expired` "
        "instead of running it after that.", low=1)
    ingress_max_backlog_s: float = _setting(
        30.0, "Admission bound: POST answers 429 when the queued work would take longer "
        "than this many seconds for the live workers.", low=0.1)
    ingress_body_budget_bytes: int = _setting(
        64 * 1024 * 1024, "Bytes of request bodies an ingress reads at once; more gets 429.",
        low=1024)
    ingress_drain_s: float = _setting(
        10.0, "On SIGTERM, how long waiting requests may still get their result before "
        "they are answered 202.", low=0)
    ingress_lang_wall_ms: int = _setting(
        2000, "Wall-time limit of a run posted to POST /lang/{language} (braindrill's API, "
        "which cannot carry limits): braindrill's 2 s timeout.", low=1)
    ingress_lang_memory_mb: int = _setting(
        50, "Memory limit of a run posted to POST /lang/{language}: braindrill's container "
        "cap (see docs/http-api.md).", low=1)

    # -- API keys and quotas (docs/keys.md) --------------------
    auth_required: bool = _setting(
        False, "Whether every execution route needs an API key (`runstream keys create`) and "
        "applies its rate limit and concurrency quota. Off in `./deploy.sh local`, on in the "
        "compose cluster. Health, metrics, the OpenAPI document, /docs and static pages stay "
        "open either way.")
    keys_topic: str = _setting(
        "runstream.keys", "Compacted topic of API key records (hashes, quotas, webhook "
        "secrets), keyed by key id; every ingress follows it.")

    # -- Webhooks (docs/webhooks.md) ------------------------------------------
    callbacks_topic: str = _setting(
        "runstream.callbacks", "Topic of webhook jobs, keyed by execution id: a worker writes "
        "one when it stores the result of a request that has a `callback`.")
    callbacks_partitions: int = _setting(
        6, "Partitions of the callbacks topic (at creation).", low=1)
    deliveries_topic: str = _setting(
        "runstream.deliveries", "Compacted topic of every webhook's attempts, by execution id "
        "(GET /v1/executions/{id}/deliveries on any ingress).")
    callback_group: str = _setting("runstream-callbacks", "Consumer group of the webhook "
                                   "deliverers.")
    callback_deliver: bool = _setting(
        True, "Whether this ingress also delivers webhooks (a member of the deliverers' "
        "group). Every ingress shows deliveries either way.")
    callback_secret: str = _setting(
        "", "HMAC-SHA256 key that signs webhooks whose API key has no secret of its own; "
        "empty: those are sent unsigned (no X-Runstream-Signature header).")
    callback_allow_private: bool = _setting(
        True, "Whether webhooks may go to loopback, private, link-local or other non-public "
        "addresses (checked on the address the URL's host resolves to, when sending). Turn "
        "it off on a public deployment: SSRF.")
    callback_timeout_s: float = _setting(
        10.0, "Bound on one webhook attempt (connect, send, answer).", low=0.1)
    callback_max_attempts: int = _setting(
        10, "Attempts per webhook before it is given up as failed.", low=1)
    callback_max_age_s: float = _setting(
        86400.0, "Age of a webhook (from its result) past which no further attempt is made.",
        low=1)
    callback_backoff_s: float = _setting(
        2.0, "Delay before the second attempt; it doubles for each next one, with jitter, up "
        "to the cap.", low=0.01)
    callback_backoff_max_s: float = _setting(
        600.0, "Longest delay between two attempts of a webhook.", low=0.01)
    callback_concurrency: int = _setting(
        32, "Webhook attempts one deliverer makes at once.", low=1)
    callback_max_pending: int = _setting(
        1000, "Webhooks one deliverer holds (sending or waiting to retry); beyond it, it "
        "reads no more jobs until some finish.", low=1)

    # -- Live events (docs/events.md) --------------------------------
    events_enabled: bool = _setting(
        True, "Live execution events: workers write progress and output chunks to the events "
        "topic, ingresses follow it for GET /v1/executions/{id}/events. Off: none are written "
        "or read, and a stream carries only `finished`.")
    events_produce: str = _setting(
        "requested", "Which executions write live events: requested (those whose request says "
        "\"events\": true, which the ingress sets for POST ?wait=0, the playground and WebSocket "
        "sessions; the others' streams carry only `finished`), or always (every one).",
        choices=("always", "requested"))
    events_topic: str = _setting(
        "runstream.events", "Topic of execution events, keyed by execution id (short-lived).")
    events_partitions: int = _setting(12, "Partitions of the events topic (at creation).", low=1)
    events_retention_ms: int = _setting(
        3600 * 1000, "How long events stay on the events topic.", low=60000)
    events_chunk_ms: int = _setting(
        50, "Longest a written byte waits before it is sent as an output chunk.", low=1)
    events_chunk_bytes: int = _setting(
        16384, "Largest output chunk (bytes); more pending output is sent at once in chunks "
        "this size.", low=256)
    events_max_chunks: int = _setting(
        1000, "Most output chunks one execution streams (besides each stream's output cap); "
        "the last says `truncated`.", low=2)
    events_queue_kb: int = _setting(
        4096, "Bytes of output events a process holds waiting for Kafka; beyond, chunks are "
        "dropped (never the run or its result).", low=64)
    ingress_events_buffer_mb: int = _setting(
        32, "Recent events an ingress keeps (of executions not finished yet) for streams that "
        "start late or resume.", low=1)
    ingress_events_stream_s: float = _setting(
        300.0, "Longest one event stream stays open; the client may reconnect with "
        "Last-Event-ID.", low=1)
    ingress_events_keepalive_s: float = _setting(
        15.0, "Interval of keep-alive comments on an idle event stream.", low=0.1)
    ingress_events_max_streams: int = _setting(
        1000, "Event streams one ingress serves at once; more get 429.", low=1)

    # -- Interactive runs (docs/piston.md, the WebSocket) ---------
    stdin_topic: str = _setting(
        "runstream.stdin", "Topic of the live stdin of interactive executions (data, end of "
        "input, signals, hang-up), keyed by execution id; every worker follows it.")
    stdin_partitions: int = _setting(12, "Partitions of the stdin topic (at creation).", low=1)
    stdin_retention_ms: int = _setting(
        3600 * 1000, "How long live stdin stays on the stdin topic.", low=60000)
    interactive_stdin_kb: int = _setting(
        1024, "Most stdin one interactive session may send (an ingress closes the session "
        "past it, killing the program); also what a worker holds of one execution's stdin "
        "not written to the program yet.", low=1)
    worker_stdin_buffer_mb: int = _setting(
        32, "Live stdin a worker holds in all, for the executions it runs and for those it "
        "may be given (every worker keeps every interactive execution's recent stdin, so "
        "that input sent before the run started is not lost); the least recently active "
        "go first.", low=1)
    ingress_max_sessions: int = _setting(
        1000, "Interactive WebSocket sessions one ingress serves at once; more are refused "
        "(Piston's error message, close 4002).", low=1)

    # -- Sandbox -------------------------------------------------------------
    sandbox_backend: str = _setting("bwrap", "Sandbox backend.", choices=("bwrap", "docker"))
    sandbox_uid: int = _setting(65534, "Unprivileged uid that submitted code runs as.", low=1)
    sandbox_gid: int = _setting(65534, "Unprivileged gid that submitted code runs as.", low=1)
    sandbox_run_dir: str = _setting(
        "/run/runstream", "Host folder for per-execution tmpfs working directories.")
    sandbox_cgroup_name: str = _setting("runstream", "Parent cgroup of per-run cgroups.")
    sandbox_tmpfs_mb: int = _setting(64, "Size of each run's working directory and /tmp.", low=1)
    sandbox_launcher: str = _setting(
        "native", "First program of each bwrap run: `native` builds runstream's own launcher "
        "(services/execution/sandbox/bwrap/launcher.c, with the host's C compiler, at start-up) "
        "and "
        "falls back to `shell` (dash, then setpriv) where it cannot; `shell` always uses dash "
        "and setpriv. Both join the run's cgroups, set its rlimits and drop root before bwrap; "
        "native saves ~3 ms per run.", choices=("native", "shell"))
    sandbox_docker_runtime: str = _setting("", "OCI runtime for the docker backend, e.g. runsc.")
    sandbox_docker_url: str = _setting(
        "unix:///var/run/docker.sock", "Docker engine the docker backend talks to.")
    sandbox_docker_timeout_s: float = _setting(
        20.0, "Bound on one Docker API call of the docker backend.", low=1)
    sandbox_docker_lifetime_s: int = _setting(
        900, "Longest life of one execution's container: it kills itself after that even "
        "if its worker is gone.", low=10)
    sandbox_docker_pool: int = _setting(
        1, "Fewest started, idle containers the docker backend keeps ready per language in "
        "use (asked for within RUNSTREAM_SANDBOX_DOCKER_POOL_IDLE_S); 0 turns the pool off.",
        low=0)
    sandbox_docker_pool_max: int = _setting(
        4, "Most started, idle containers the docker backend keeps ready per language: between "
        "the two, the pool follows the language's recent rate of executions times how long one "
        "holds its container plus a container's start.", low=0)
    sandbox_docker_pool_idle_s: float = _setting(
        300.0, "A language of the docker backend not asked for this long keeps no idle "
        "container.", low=1)
    languages_file: str = _setting("", "Language registry (TOML); default: the shipped one.")
    languages: str = _setting(
        "all", "Language profile: `all`, `core` (the twelve of the `core` set in the registry) "
        "or names and aliases, comma-separated. `./deploy.sh local` installs its toolchains; "
        "a worker serves those of them that are installed. An unknown name stops the worker "
        "at start-up.")

    # Defaults and server maxima of per-request limits (run phase).
    default_wall_ms: int = _setting(5000, "Default wall-time limit of a run.", low=1)
    default_cpu_ms: int = _setting(5000, "Default CPU-time limit of a run.", low=1)
    default_memory_mb: int = _setting(256, "Default memory limit of a run.", low=1)
    default_processes: int = _setting(64, "Default process/thread limit of a run.", low=1)
    default_output_kb: int = _setting(1024, "Default cap on stdout and on stderr, each.", low=1)
    default_file_size_kb: int = _setting(16384, "Default largest file a run may write.", low=0)
    max_wall_ms: int = _setting(30000, "Maximum wall-time limit a request may ask for.", low=1)
    max_cpu_ms: int = _setting(30000, "Maximum CPU-time limit a request may ask for.", low=1)
    max_memory_mb: int = _setting(1024, "Maximum memory limit a request may ask for.", low=1)
    max_processes: int = _setting(256, "Maximum process limit a request may ask for.", low=1)
    max_output_kb: int = _setting(4096, "Maximum output cap a request may ask for.", low=1)
    max_file_size_kb: int = _setting(65536, "Maximum file size a request may ask for.", low=0)
    # Compilers get their own, fixed limits: the user's limits are about the program.
    compile_wall_ms: int = _setting(20000, "Wall-time limit of a compile step.", low=1)
    compile_cpu_ms: int = _setting(20000, "CPU-time limit of a compile step.", low=1)
    compile_memory_mb: int = _setting(1024, "Memory limit of a compile step.", low=1)
    compile_cache_mb: int = _setting(
        64, "Memory each worker process gives its compile cache (docs/speed.md): "
        "what a successful compile left in the workspace, kept by language, version, "
        "command, limits and the files' names and bytes, and restored instead of compiling "
        "the same source again; least recently used out first. 0 turns it off.", low=0)
    compile_cache_entry_mb: int = _setting(
        16, "Largest compile (its files and output) the compile cache keeps; larger ones "
        "are compiled every time.", low=1)

    # -- Logging -------------------------------------------------------------
    log_level: str = _setting("INFO", "Log level.", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    log_format: str = _setting(
        "text", "Log lines as text, or as one JSON object per line with the execution id "
        "on each line that concerns an execution.", choices=("text", "json"))

    # -- Metrics (docs/metrics.md) -----------------------------------------------
    worker_metrics_host: str = _setting(
        "127.0.0.1", "Address a worker serves its Prometheus metrics on.")
    worker_metrics_port: int = _setting(
        0, "Port of a worker's Prometheus metrics (any path, e.g. /metrics); 0: not served. "
        "Unique per worker on one host (./deploy.sh local gives 9101, 9102).", low=0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``RUNSTREAM_*`` variables (default: the process environment) and validate."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = PREFIX + f.name.upper()
            if name in env:
                values[f.name] = _convert(name, env[name], f.type)
        values.update(overrides)
        if values.get("worker_concurrency") is None:
            values["worker_concurrency"] = _default_concurrency()
        if not values.get("worker_id"):
            values["worker_id"] = _default_worker_id()
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ConfigurationError naming the first bad setting."""
        for f in fields(self):
            value = getattr(self, f.name)
            low = f.metadata.get("low")
            choices = f.metadata.get("choices")
            if low is not None and value is not None and value < low:
                raise ConfigurationError(f"{PREFIX}{f.name.upper()}={value}: must be >= {low}")
            if choices and value not in choices:
                raise ConfigurationError(
                    f"{PREFIX}{f.name.upper()}={value!r}: must be one of {', '.join(choices)}")
        if not any(part.strip() for part in self.languages.split(",")):
            raise ConfigurationError(f"{PREFIX}LANGUAGES is empty: use all, core or names")
        if (self.ingress_reply_partition is not None
                and self.ingress_reply_partition >= self.replies_partitions):
            raise ConfigurationError(
                f"{PREFIX}INGRESS_REPLY_PARTITION={self.ingress_reply_partition}: the replies "
                f"topic has {self.replies_partitions} partitions "
                f"(0..{self.replies_partitions - 1})")
        if self.kafka_ssl_keyfile and not self.kafka_ssl_certfile:
            raise ConfigurationError(
                f"{PREFIX}KAFKA_SSL_KEYFILE needs {PREFIX}KAFKA_SSL_CERTFILE (the certificate)")
        if self.topics_min_insync_replicas > self.topics_replication_factor:
            raise ConfigurationError(
                f"{PREFIX}TOPICS_MIN_INSYNC_REPLICAS={self.topics_min_insync_replicas}: above "
                f"the replication factor ({self.topics_replication_factor})")
        if self.worker_heartbeat_s * 3 > self.worker_session_timeout_s:
            raise ConfigurationError(
                f"{PREFIX}WORKER_HEARTBEAT_S must be at most a third of the session timeout")
        for name in ("wall_ms", "cpu_ms", "memory_mb", "processes", "output_kb", "file_size_kb"):
            if getattr(self, "default_" + name) > getattr(self, "max_" + name):
                raise ConfigurationError(
                    f"{PREFIX}DEFAULT_{name.upper()} is above {PREFIX}MAX_{name.upper()}")
        for name in ("wall_ms", "memory_mb"):  # else every /lang request would be refused
            if getattr(self, "ingress_lang_" + name) > getattr(self, "max_" + name):
                raise ConfigurationError(
                    f"{PREFIX}INGRESS_LANG_{name.upper()} is above {PREFIX}MAX_{name.upper()}")
        if self.sandbox_docker_pool > self.sandbox_docker_pool_max:
            raise ConfigurationError(
                f"{PREFIX}SANDBOX_DOCKER_POOL is above {PREFIX}SANDBOX_DOCKER_POOL_MAX")
        if self.callback_backoff_s > self.callback_backoff_max_s:
            raise ConfigurationError(
                f"{PREFIX}CALLBACK_BACKOFF_S is above {PREFIX}CALLBACK_BACKOFF_MAX_S")
        if self.callback_max_age_s * 1000 > self.results_retention_ms:  # jobs would expire
            raise ConfigurationError(
                f"{PREFIX}CALLBACK_MAX_AGE_S is longer than {PREFIX}RESULTS_RETENTION_MS, the "
                "retention of the webhook jobs still being retried")
        if self.events_chunk_bytes * 6 + 4096 > self.message_max_bytes:  # \u00XX escapes
            raise ConfigurationError(
                f"{PREFIX}EVENTS_CHUNK_BYTES: a chunk must fit in one message "
                f"({PREFIX}MESSAGE_MAX_BYTES={self.message_max_bytes})")
        if self.max_output_kb * 1024 * 2 > self.message_max_bytes:
            raise ConfigurationError(
                f"{PREFIX}MAX_OUTPUT_KB: stdout and stderr at their cap must fit in one message "
                f"({PREFIX}MESSAGE_MAX_BYTES={self.message_max_bytes})")

    @property
    def execution_horizon_s(self) -> float:
        """The longest an execution may still be going after it was asked for: its
        deadline in the queue, a compile and a run at their limits, and a margin."""
        return self.ingress_deadline_s + (self.compile_wall_ms + self.max_wall_ms) / 1000 + 10

    @property
    def default_limits(self) -> Limits:
        return Limits(self.default_wall_ms, self.default_cpu_ms, self.default_memory_mb,
                      self.default_processes, self.default_output_kb, self.default_file_size_kb)

    @property
    def max_limits(self) -> Limits:
        return Limits(self.max_wall_ms, self.max_cpu_ms, self.max_memory_mb,
                      self.max_processes, self.max_output_kb, self.max_file_size_kb)

    def compile_limits(self, run: Limits) -> Limits:
        """Limits of a compile step: generous, fixed by the server, output capped like the run."""
        return Limits(self.compile_wall_ms, self.compile_cpu_ms, self.compile_memory_mb,
                      max(run.processes, 64), run.output_kb, max(run.file_size_kb, 262144))

    @classmethod
    def markdown_table(cls) -> str:
        """Every setting as a Markdown table row: variable, default, meaning."""
        rows = ["| variable | default | meaning |", "|---|---|---|"]
        for f in fields(cls):
            default = f.default
            shown = "(see meaning)" if default is None else f"`{_shown(default)}`"
            rows.append(f"| `{PREFIX}{f.name.upper()}` | {shown} | {f.metadata['doc']} |")
        return "\n".join(rows)


def _shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _convert(name: str, raw: str, kind: Any) -> Any:
    kind = str(kind)
    if kind.endswith(" | None"):  # an optional setting: empty means unset
        if not raw.strip():
            return None
        kind = kind.removesuffix(" | None")
    if kind == "bool":
        if raw.strip().lower() in _TRUE + _FALSE:
            return raw.strip().lower() in _TRUE
        raise ConfigurationError(f"{name}={raw!r}: expected true or false "
                                 f"({', '.join(_TRUE + _FALSE)})")
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError as e:
        raise ConfigurationError(f"{name}={raw!r}: expected a {kind}") from e
    return raw
