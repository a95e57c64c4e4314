# The load balancer in front of the ingresses: Debian's HAProxy. BASE: see the
# top-level Dockerfile (debian:bookworm-slim where images can be pulled).
ARG BASE=runstream-cluster/base:bookworm
FROM ${BASE}

RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      haproxy curl >/dev/null \
 && rm -rf /var/lib/apt/lists/*

COPY haproxy.cfg /etc/haproxy/haproxy.cfg
EXPOSE 8080
STOPSIGNAL SIGUSR1
ENTRYPOINT ["/usr/sbin/haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
