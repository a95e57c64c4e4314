#!/bin/bash
# Start one node of the compose cluster's Kafka: broker and KRaft controller in one
# process, one of a static three-voter quorum. Its storage is formatted once, on the
# first start, with the cluster id all nodes share; later starts reuse the volume.
#
# Environment (docker-compose.yaml sets it per node):
#   KAFKA_NODE_ID        this node's id (1, 2, 3)
#   KAFKA_CLUSTER_ID     the KRaft cluster id, the same on every node (22 base64 chars)
#   KAFKA_VOTERS         the controller quorum, e.g. 1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093
#   KAFKA_HOST           the name the other nodes and the clients reach this one by
#   KAFKA_REPLICATION    replication factor of Kafka's own topics (offsets, transactions)
#   KAFKA_MIN_ISR        min.insync.replicas, broker-wide default
#   KAFKA_HEAP_MB        Java heap
set -euo pipefail

: "${KAFKA_NODE_ID:?}" "${KAFKA_CLUSTER_ID:?}" "${KAFKA_VOTERS:?}" "${KAFKA_HOST:?}"
REPLICATION=${KAFKA_REPLICATION:-3}
MIN_ISR=${KAFKA_MIN_ISR:-2}
HEAP=${KAFKA_HEAP_MB:-512}
DATA=${KAFKA_DATA:-/var/lib/kafka}
PROPS=$DATA/server.properties
CP="/opt/kafka/libs/*"
mkdir -p "$DATA/logs"

cat >"$PROPS" <<PROPS
process.roles=broker,controller
node.id=$KAFKA_NODE_ID
controller.quorum.voters=$KAFKA_VOTERS
listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093
advertised.listeners=PLAINTEXT://$KAFKA_HOST:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA/logs
# Replicated: every topic (runstream's are created with their own settings) and
# Kafka's own keep $REPLICATION copies; a write with acks=all needs $MIN_ISR of them.
default.replication.factor=$REPLICATION
min.insync.replicas=$MIN_ISR
offsets.topic.replication.factor=$REPLICATION
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=$REPLICATION
transaction.state.log.min.isr=$MIN_ISR
share.coordinator.state.topic.replication.factor=$REPLICATION
share.coordinator.state.topic.min.isr=$MIN_ISR
unclean.leader.election.enable=false
# A dead node is fenced (its partitions get new leaders, it leaves every ISR) within
# six seconds, so that acks=all writes do not wait for it long (defaults: 9 s, 30 s).
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=6000
replica.lag.time.max.ms=10000
# The controllers' Raft timeouts doubled from their defaults: on a busy 2-core host the
# default 1 s election timeout made the quorum re-elect over and over at start-up.
controller.quorum.election.timeout.ms=2000
controller.quorum.fetch.timeout.ms=4000
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
auto.create.topics.enable=false
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
log.retention.hours=168
log.segment.bytes=268435456
PROPS

JAVA=(/usr/bin/java -XX:+UseG1GC -Dlog4j2.configurationFile=/opt/kafka/log4j2.xml
      "-Dkafka.logs.dir=$DATA" -cp "$CP")
if [ ! -f "$DATA/logs/meta.properties" ]; then
  echo "kafka-node $KAFKA_NODE_ID: formatting $DATA/logs for cluster $KAFKA_CLUSTER_ID"
  "${JAVA[@]}" -Xmx256m kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" -c "$PROPS"
fi
echo "kafka-node $KAFKA_NODE_ID: starting (voters $KAFKA_VOTERS)"
# exec: `docker stop`'s SIGTERM reaches the JVM, which does Kafka's controlled shutdown.
exec "${JAVA[@]}" "-Xmx${HEAP}m" "-Xms${HEAP}m" kafka.Kafka "$PROPS"
