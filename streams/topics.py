"""Explicit creation of runstream's topics, with their partition counts and configs."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from runstream.schemas.errors import BrokerUnavailable
from runstream.services.execution.languages import Registry
from runstream.services.settings import Settings
from runstream.streams import kafka

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    """A topic runstream needs."""

    name: str
    partitions: int
    config: dict[str, str]


def language_topic(settings: Settings, language: str) -> str:
    """The requests topic of one language, read only by workers that run it.

    Every worker reads the shared requests topic; one that does not run a
    request's language forwards the record here, so it reaches a worker that does.
    """
    return f"{settings.requests_topic}.{language}"


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The requests, replies and results topics as the settings describe them."""
    size = str(settings.message_max_bytes)
    languages = Registry.from_settings(settings).names()
    return [
        *(TopicSpec(language_topic(settings, name), settings.language_topic_partitions,
                    {"max.message.bytes": size,
                     "retention.ms": str(settings.results_retention_ms)})
          for name in languages),
        TopicSpec(settings.requests_topic, settings.requests_partitions,
                  {"max.message.bytes": size, "retention.ms": str(settings.results_retention_ms)}),
        # Replies are read live by the ingress that owns the partition; a day is plenty.
        TopicSpec(settings.replies_topic, settings.replies_partitions,
                  {"max.message.bytes": size, "retention.ms": str(24 * 3600 * 1000)}),
        # Compacted, keyed by id: the latest result per execution stays readable;
        # "delete" as well so that results do not accumulate forever.
        TopicSpec(settings.results_topic, settings.results_partitions,
                  {"max.message.bytes": size, "cleanup.policy": "compact,delete",
                   "retention.ms": str(settings.results_retention_ms),
                   "segment.ms": str(3600 * 1000)}),
        # Records no worker could answer at all, with the reason in their headers.
        TopicSpec(settings.dead_letter_topic, 1,
                  {"max.message.bytes": size, "retention.ms": str(settings.results_retention_ms)}),
        # One record per worker id: what it serves (languages and versions).
        TopicSpec(settings.workers_topic, 1, {"cleanup.policy": "compact"}),
        # Live execution events, keyed by id (so in order per id); read live, kept briefly.
        TopicSpec(settings.events_topic, settings.events_partitions,
                  {"max.message.bytes": size, "retention.ms": str(settings.events_retention_ms),
                   "segment.ms": str(min(settings.events_retention_ms, 3600 * 1000))}),
        # Live stdin of interactive executions, keyed by id (so in order per id); every
        # worker follows it from (nearly) its end. Not compacted: every item counts.
        TopicSpec(settings.stdin_topic, settings.stdin_partitions,
                  {"max.message.bytes": size, "retention.ms": str(settings.stdin_retention_ms),
                   "segment.ms": str(min(settings.stdin_retention_ms, 3600 * 1000))}),
        # One record per API key (its latest state: a revocation replaces it), kept
        # forever: compacted, never deleted by age. Small; one partition keeps it simple.
        TopicSpec(settings.keys_topic, 1, {"cleanup.policy": "compact"}),
        # Webhook jobs (the callback and the result), keyed by id; read by the deliverers.
        TopicSpec(settings.callbacks_topic, settings.callbacks_partitions,
                  {"max.message.bytes": size, "retention.ms": str(settings.results_retention_ms)}),
        # Every webhook's attempts, the latest document per id (GET .../deliveries).
        TopicSpec(settings.deliveries_topic, settings.callbacks_partitions,
                  {"cleanup.policy": "compact,delete",
                   "retention.ms": str(settings.results_retention_ms),
                   "segment.ms": str(3600 * 1000)}),
    ]


async def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None,
                        *, timeout_s: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    specs = specs if specs is not None else topic_specs(settings)
    admin = kafka.admin(settings, client_id="runstream-topics", timeout_s=timeout_s)
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        existing = set(await asyncio.wait_for(admin.list_topics(), timeout_s))
        created: list[str] = []
        for spec in (s for s in specs if s.name not in existing):
            resp = await asyncio.wait_for(
                admin.create_topics([NewTopic(
                    spec.name, spec.partitions, settings.topics_replication_factor,
                    topic_configs={"min.insync.replicas":
                                   str(settings.topics_min_insync_replicas)} | spec.config)]),
                timeout_s)
            for topic, code, *rest in resp.topic_errors:
                err = for_code(code)
                if code == 0:
                    created.append(topic)
                    log.info("created topic %s (%d partitions, replication factor %d)", topic,
                             spec.partitions, settings.topics_replication_factor)
                # Another process winning the race to create it is fine.
                elif err is not TopicAlreadyExistsError:
                    raise err(f"creating topic {topic}: {rest[0] if rest else ''}")
        return created
    except (KafkaError, OSError, TimeoutError) as e:
        raise BrokerUnavailable(
            f"could not create topics on {settings.bootstrap_servers}: {e!r}") from e
    finally:
        await kafka.close(admin)
