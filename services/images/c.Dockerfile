# runstream/c for hosts that can pull official images (see docs/sandbox.md).
FROM gcc:12-bookworm
# languages.toml calls tools by absolute /usr/bin paths.
RUN set -e \
    && ln -sf /usr/local/bin/gcc /usr/bin/gcc
RUN mkdir -p /box
WORKDIR /box
ENV LANG=C.UTF-8
