# runstream/beam (erlang, elixir) for hosts that can pull official images
# (see docs/sandbox.md): Debian bookworm with the languages' packages, as .ci/build-images.sh
# makes it where no registry is reachable.
FROM debian:bookworm-slim
RUN set -e \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       elixir erlang-base \
    && rm -rf /var/lib/apt/lists/*
RUN mkdir -p /box
WORKDIR /box
ENV LANG=C.UTF-8
