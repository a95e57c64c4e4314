# runstream/perl for hosts that can pull official images (see docs/sandbox.md).
FROM perl:5.36-slim-bookworm
# languages.toml calls tools by absolute /usr/bin paths.
RUN set -e \
    && ln -sf /usr/local/bin/perl /usr/bin/perl
RUN mkdir -p /box
WORKDIR /box
ENV LANG=C.UTF-8
