# The runstream image of the compose cluster: ingress, worker and `runstream topics` in one.
#
# Built by services/cluster/build.sh (./deploy.sh runs it), which assembles the build
# context: this file, the project's wheels (`pip wheel` of this checkout and its
# dependencies, made on the host) and apt-packages.txt (the sandbox's tools and every
# language's Debian packages, as services/languages.toml names them).
#
# BASE is a Debian bookworm root file system. Where no image registry is reachable
# (here, air-gapped sites) it is runstream-cluster/base:bookworm, imported by build.sh from
# debootstrap (.ci/build-images.sh --base); hosts that can pull official images set
# RUNSTREAM_CLUSTER_BASE=debian:bookworm-slim and get the same image.
ARG BASE=runstream-cluster/base:bookworm
FROM ${BASE}

COPY apt-packages.txt /tmp/apt-packages.txt
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      $(cat /tmp/apt-packages.txt) >/dev/null \
 && rm -rf /var/lib/apt/lists/* /tmp/apt-packages.txt

COPY wheels /tmp/wheels
RUN python3 -m venv /opt/runstream \
 && /opt/runstream/bin/pip install -q --no-index --find-links /tmp/wheels runstream \
 && rm -rf /tmp/wheels /root/.cache

COPY worker-entry.sh /usr/local/bin/runstream-worker
RUN chmod 0755 /usr/local/bin/runstream-worker

ENV PATH=/opt/runstream/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    RUNSTREAM_INGRESS_HOST=0.0.0.0 \
    RUNSTREAM_INDEX_DIR=/var/lib/runstream/index
ENTRYPOINT ["runstream"]
CMD ["ingress"]
