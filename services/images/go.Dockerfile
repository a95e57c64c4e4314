# runstream/go for hosts that can pull official images (see docs/sandbox.md).
FROM golang:1.21-bookworm
# languages.toml calls tools by absolute /usr/bin paths.
RUN set -e \
    && ln -sf /usr/local/go/bin/go /usr/bin/go
RUN mkdir -p /box
WORKDIR /box
ENV LANG=C.UTF-8
