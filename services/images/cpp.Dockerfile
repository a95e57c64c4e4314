# runstream/cpp for hosts that can pull official images (see docs/sandbox.md).
FROM gcc:12-bookworm
# languages.toml calls tools by absolute /usr/bin paths.
RUN set -e \
    && ln -sf /usr/local/bin/g++ /usr/bin/g++
RUN mkdir -p /box
WORKDIR /box
ENV LANG=C.UTF-8
