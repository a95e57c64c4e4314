# runstream/ruby for hosts that can pull official images (see docs/sandbox.md).
FROM ruby:3.1-slim-bookworm
# languages.toml calls tools by absolute /usr/bin paths.
RUN set -e \
    && ln -sf /usr/local/bin/ruby /usr/bin/ruby
RUN mkdir -p /box
WORKDIR /box
ENV LANG=C.UTF-8
