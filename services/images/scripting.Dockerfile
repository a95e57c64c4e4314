# runstream/scripting (lua, tcl, awk, sqlite, scheme, commonlisp, prolog, basic, forth, racket) for hosts that can pull official images
# (see docs/sandbox.md): Debian bookworm with the languages' packages, as .ci/build-images.sh
# makes it where no registry is reachable.
FROM debian:bookworm-slim
RUN set -e \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       gawk gforth guile-3.0 lua5.4 racket sbcl sqlite3 swi-prolog-nox tcl8.6 yabasic \
    && rm -rf /var/lib/apt/lists/*
RUN mkdir -p /box
WORKDIR /box
ENV LANG=C.UTF-8
