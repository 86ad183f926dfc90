#!/usr/bin/env bash
# Install the container engine the sandbox's `containers` backend and the image tests use:
# Debian's podman with runc, and debootstrap (local base images when no registry is
# reachable). Idempotent; needs root (or sudo).
#
# The drop-in below is what makes podman run on machines like the CI ones (see
# shared/notes/servers.md): podman's default runtime crun fails there ("setrlimit
# RLIMIT_NOFILE: Operation not permitted", then "cgroups in hybrid mode not supported");
# runc with explicit default ulimits below the hard limit works.
set -euo pipefail
SUDO=""
[[ "$(id -u)" == 0 ]] || SUDO=sudo
PACKAGES=(podman runc debootstrap)
if ! dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1; then
  echo "installing Debian packages: ${PACKAGES[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
fi
DROPIN=/etc/containers/containers.conf.d/50-datatier.conf
WANT='# Written by datatier scripts/install-podman.sh: runc and explicit ulimits, because crun
# cannot set RLIMIT_NOFILE nor use hybrid cgroups on machines without CAP_SYS_RESOURCE.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"'
if [[ "$(cat "$DROPIN" 2>/dev/null)" != "$WANT" ]]; then
  $SUDO mkdir -p "$(dirname "$DROPIN")"
  printf '%s\n' "$WANT" | $SUDO tee "$DROPIN" >/dev/null
  echo "wrote $DROPIN"
fi
# A quick self-check: the engine answers (no container is started here).
podman info --format '{{.Host.OCIRuntime.Name}}' >/dev/null
