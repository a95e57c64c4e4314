# runstream/php for hosts that can pull official images (see docs/sandbox.md).
FROM php:8.2-cli-bookworm
# languages.toml calls tools by absolute /usr/bin paths.
RUN set -e \
    && ln -sf /usr/local/bin/php /usr/bin/php
RUN mkdir -p /box
WORKDIR /box
ENV LANG=C.UTF-8
