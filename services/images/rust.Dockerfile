# runstream/rust for hosts that can pull official images (see docs/sandbox.md).
FROM rust:1-slim-bookworm
# languages.toml calls tools by absolute /usr/bin paths.
RUN set -e \
    && ln -sf /usr/local/cargo/bin/rustc /usr/bin/rustc
RUN mkdir -p /box
WORKDIR /box
ENV LANG=C.UTF-8
