"""Explicit creation of runstream's topics, with their partition counts and configs."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from runstream.schemas.errors import BrokerUnavailable
from runstream.services.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    """A topic runstream needs."""

    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The requests, replies and results topics as the settings describe them."""
    size = str(settings.message_max_bytes)
    return [
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
        # One record per worker id: what it serves (languages and versions).
        TopicSpec(settings.workers_topic, 1, {"cleanup.policy": "compact"}),
    ]


async def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None,
                        *, timeout_s: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    specs = specs if specs is not None else topic_specs(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        existing = set(await asyncio.wait_for(admin.list_topics(), timeout_s))
        created: list[str] = []
        for spec in (s for s in specs if s.name not in existing):
            resp = await asyncio.wait_for(
                admin.create_topics([NewTopic(spec.name, spec.partitions, 1,
                                              topic_configs=spec.config)]),
                timeout_s)
            for topic, code, *rest in resp.topic_errors:
                err = for_code(code)
                if code == 0:
                    created.append(topic)
                    log.info("created topic %s (%d partitions)", topic, spec.partitions)
                # Another process winning the race to create it is fine.
                elif err is not TopicAlreadyExistsError:
                    raise err(f"creating topic {topic}: {rest[0] if rest else ''}")
        return created
    except (KafkaError, OSError, TimeoutError) as e:
        raise BrokerUnavailable(
            f"could not create topics on {settings.bootstrap_servers}: {e!r}") from e
    finally:
        await admin.close()
