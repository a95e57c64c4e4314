#!/usr/bin/env bash
# Build the docker backend's runtime images from Debian packages; idempotent, cached.
#
#   .ci/build-images.sh [LANGUAGE...]     default: python javascript c
#   .ci/build-images.sh all               every language of services/languages.toml
#   .ci/build-images.sh core              the languages of the `core` profile
#   .ci/build-images.sh --base            only the cached base root file system; prints its path
#
# Several languages may share one image (languages.toml's `image`, e.g. runstream/jvm
# for kotlin, scala, groovy and clojure): it is built once, with the `apt` packages of
# every language that names it. The .debs are kept in $CACHE/archives, which
# ./deploy.sh's host installs use too, so each package is downloaded once per machine.
#
# For hosts that cannot pull from an image registry. A minbase Debian bookworm
# root file system is made once with debootstrap (cached as a tarball); each
# language's image is a copy of it with the language's `apt` packages (from
# languages.toml) installed by apt-get in a chroot, documentation stripped, and
# `docker import`ed as the language's `image` (runstream/<name>). Each image
# carries the label dev.runstream.inputs, a hash of what it was built from; an
# image whose label matches is skipped. Hosts that can pull official images use
# services/images/<lang>.Dockerfile instead; both produce the same names.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${RUNSTREAM_IMAGE_CACHE:-/var/cache/runstream/images}
SUITE=bookworm
# The host's own apt sources name the mirrors this machine may use: take them from there.
host_uri() {  # every URI of the host's apt sources (deb822 and one-line formats)
    { cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } | awk '/^URIs:/ {print $2}'
    { grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list || true; } |
        awk '{print $2}'
}
mirror_for() { host_uri | awk -v want="/$1" '$0 ~ want "/?$" && !found { print; found = 1 }'; }
MIRROR=${RUNSTREAM_DEBIAN_MIRROR:-$(mirror_for debian)}
SECURITY=${RUNSTREAM_DEBIAN_SECURITY:-$(mirror_for debian-security)}
[ -n "$MIRROR" ] || { echo "build-images: no Debian mirror in the host's apt sources;" \
    "set RUNSTREAM_DEBIAN_MIRROR" >&2; exit 1; }
REGISTRY=services/languages.toml
LABEL=dev.runstream.inputs
# Bump to rebuild every image when this script's recipe changes meaningfully.
RECIPE=3
say() { echo "build-images: $*"; }

[ "$(id -u)" = 0 ] || { say "needs root (debootstrap, chroot)" >&2; exit 1; }
command -v docker >/dev/null || { say "no docker client; run .ci/docker-engine.sh" >&2; exit 1; }
command -v debootstrap >/dev/null || {
    say "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python

langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(python javascript c)
# The images to build, one line each: "image<TAB>languages<TAB>pkg pkg ...", where the
# packages are those of every language of the registry that uses the image.
images() {
    "$PY" - "$REGISTRY" "$@" <<'EOF'
import sys, tomllib
reg = tomllib.load(open(sys.argv[1], "rb"))
names = sys.argv[2:]
if names == ["all"]:
    names = list(reg)
elif names == ["core"]:
    names = [n for n, spec in reg.items() if spec.get("core")]
unknown = [n for n in names if n not in reg]
if unknown:
    sys.exit(f"build-images: no language {', '.join(unknown)} in {sys.argv[1]}")
for image in dict.fromkeys(reg[n]["image"] for n in names):
    users = [n for n, spec in reg.items() if spec["image"] == image]
    pkgs = sorted({p for n in users for p in reg[n]["apt"]})
    print(image, ",".join(users), " ".join(pkgs), sep="\t")
EOF
}

mkdir -p "$CACHE/archives/partial"
BASE="$CACHE/base-$SUITE-r$RECIPE.tar"
WORK=$(mktemp -d "$CACHE/work.XXXXXX")
cleanup() {
    # A chroot's bind mounts must go before its folder does.
    for m in $(awk -v w="$WORK" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do
        umount -l "$m" || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

make_base() {
    local root="$WORK/base" t0=$SECONDS
    say "debootstrap --variant=minbase $SUITE (once; cached as $BASE)"
    debootstrap --variant=minbase --cache-dir="$CACHE/archives" "$SUITE" "$root" "$MIRROR" \
        >"$WORK/debootstrap.log" 2>&1 || { tail -30 "$WORK/debootstrap.log" >&2; exit 1; }
    cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY $SUITE-security main
EOF
    # No documentation, manuals or translations: smaller images, faster installs.
    cat >"$root/etc/dpkg/dpkg.cfg.d/01-runstream-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
        >"$root/etc/apt/apt.conf.d/01-runstream"
    in_chroot "$root" apt-get update -qq
    in_chroot "$root" apt-get -y -qq dist-upgrade >/dev/null
    leave_chroot "$root"
    tar -C "$root" -cf "$BASE.tmp" . && mv "$BASE.tmp" "$BASE"
    rm -rf "$root"
    say "base ready in $((SECONDS - t0))s"
}

in_chroot() {
    local root=$1; shift
    cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
    mkdir -p "$root/var/cache/apt/archives"
    mountpoint -q "$root/var/cache/apt/archives" \
        || mount --bind "$CACHE/archives" "$root/var/cache/apt/archives"
    # policy-rc.d: no package may start a service in the chroot.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod +x "$root/usr/sbin/policy-rc.d"
    DEBIAN_FRONTEND=noninteractive LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        chroot "$root" "$@"
}

leave_chroot() {
    local m
    for m in "$1/var/cache/apt/archives" "$1/proc"; do
        if mountpoint -q "$m"; then umount "$m"; fi
    done
}

strip_root() {
    local root=$1
    leave_chroot "$root"
    rm -rf "$root"/usr/share/{doc,man,info,locale,lintian}/* "$root"/var/lib/apt/lists/* \
        "$root"/var/cache/apt/*.bin "$root"/var/log/* "$root/usr/sbin/policy-rc.d" \
        "$root/etc/dpkg/dpkg.cfg.d/02-runstream-unsafe-io" \
        "$root"/tmp/* "$root"/var/tmp/*
    : >"$root/etc/resolv.conf"
}

inputs_hash() {  # what an image depends on: recipe, suite, packages
    printf 'recipe=%s suite=%s image=%s apt=%s\n' "$RECIPE" "$SUITE" "$1" "$2" \
        | sha256sum | cut -c1-16
}

# `--base`: only make sure the cached Debian root file system exists and print its
# path (services/cluster/build.sh imports it as the cluster's base image).
if [ "${langs[0]}" = --base ]; then
    [ -f "$BASE" ] || make_base >&2
    echo "$BASE"
    exit 0
fi

built=0 skipped=0 t_all=$SECONDS
mapfile -t wanted < <(images "${langs[@]}")
[ ${#wanted[@]} -gt 0 ] || exit 1  # images() said why
for line in "${wanted[@]}"; do
    IFS=$'\t' read -r image users pkgs <<<"$line"
    lang=${image##*/}
    want=$(inputs_hash "$image" "$pkgs")
    have=$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$image" 2>/dev/null || true)
    if [ "$have" = "$want" ]; then
        say "$image is up to date ($LABEL=$want)"
        skipped=$((skipped + 1))
        continue
    fi
    [ -f "$BASE" ] || make_base
    t0=$SECONDS
    root="$WORK/$lang"
    mkdir -p "$root"
    tar -C "$root" -xf "$BASE"
    # No fsync per unpacked file: a half-built root is thrown away anyway, and syncing
    # made the big toolchains twice as slow to install (ghc: 149 s with it, 76 s without).
    echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/02-runstream-unsafe-io"
    # shellcheck disable=SC2086  # the package list is meant to split
    in_chroot "$root" apt-get install -y -qq $pkgs >"$WORK/$lang.log" 2>&1 \
        || { tail -30 "$WORK/$lang.log" >&2; exit 1; }
    strip_root "$root"
    tar -C "$root" -c . | docker import \
        --change "LABEL $LABEL=$want" \
        --change "LABEL dev.runstream.languages=$users" \
        --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8' \
        --change 'WORKDIR /box' \
        - "$image" >/dev/null
    rm -rf "$root"
    size=$(docker image inspect -f '{{.Size}}' "$image")
    say "built $image for $users ($pkgs) in $((SECONDS - t0))s, $((size / 1048576)) MiB"
    built=$((built + 1))
done
say "done: $built built, $skipped up to date, ${SECONDS}s in all"
