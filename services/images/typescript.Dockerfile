# runstream/typescript for hosts that can pull official images (see docs/sandbox.md).
# Debian's node-typescript puts tsc.js and @types/node where languages.toml expects them.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends nodejs node-typescript \
    && rm -rf /var/lib/apt/lists/*
RUN mkdir -p /box
WORKDIR /box
ENV LANG=C.UTF-8
