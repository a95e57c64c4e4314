# One Apache Kafka node (KRaft) of the compose cluster, from Maven Central's jars.
#
# services/cluster/build.sh puts in the build context the jars `runstream broker`
# fetched (org.apache.kafka:kafka_2.13 and its runtime dependencies, cached under
# ~/.cache/runstream/kafka-<version>/libs), the node's start script and its logging
# configuration. BASE: see the top-level Dockerfile (debian:bookworm-slim where
# images can be pulled).
ARG BASE=runstream-cluster/base:bookworm
FROM ${BASE}

RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      openjdk-17-jre-headless >/dev/null \
 && rm -rf /var/lib/apt/lists/*

COPY libs /opt/kafka/libs
COPY log4j2.xml kafka-node.sh /opt/kafka/
ENV LANG=C.UTF-8 KAFKA_DATA=/var/lib/kafka
VOLUME /var/lib/kafka
EXPOSE 9092 9093
ENTRYPOINT ["/bin/bash", "/opt/kafka/kafka-node.sh"]
