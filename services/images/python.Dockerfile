# runstream/python for hosts that can pull official images (see docs/sandbox.md).
FROM python:3.11-slim-bookworm
# languages.toml calls tools by absolute /usr/bin paths.
RUN set -e \
    && ln -sf /usr/local/bin/python3 /usr/bin/python3
RUN mkdir -p /box
WORKDIR /box
ENV LANG=C.UTF-8
