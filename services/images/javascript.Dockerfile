# runstream/javascript for hosts that can pull official images (see docs/sandbox.md).
FROM node:18-bookworm-slim
# languages.toml calls tools by absolute /usr/bin paths.
RUN set -e \
    && ln -sf /usr/local/bin/node /usr/bin/node
RUN mkdir -p /box
WORKDIR /box
ENV LANG=C.UTF-8
