# The runstream image: ingress and worker (bwrap backend) in one, for docker compose.
# Built from the official Debian-based Python image on hosts that can pull images;
# the language runtimes come from Debian's packages, as services/languages.toml lists.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      bubblewrap util-linux dash procps ca-certificates libseccomp2 \
      python3 nodejs node-typescript openjdk-17-jdk-headless gcc g++ libc6-dev golang-go rustc \
      ruby perl php-cli bash coreutils \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/runstream
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY streams streams
COPY services services
RUN pip install --no-cache-dir .

ENV RUNSTREAM_INGRESS_HOST=0.0.0.0
ENTRYPOINT ["runstream"]
CMD ["ingress"]
