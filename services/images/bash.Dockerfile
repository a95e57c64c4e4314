# runstream/bash for hosts that can pull official images (see docs/sandbox.md).
FROM debian:bookworm-slim
RUN mkdir -p /box
WORKDIR /box
ENV LANG=C.UTF-8
