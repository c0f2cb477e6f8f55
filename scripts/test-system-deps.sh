#!/usr/bin/env bash
# Makes sure the system programs the test suite drives are installed (PostgreSQL, sshd, an
# ACME test CA, coturn, Prometheus, Chromium…). Run by `npm test` (pretest) and by .ci/run.
# Installs what is missing with apt-get when it can (root or sudo on Debian); otherwise it
# prints the command to run and fails.
set -euo pipefail

# Debian packages the test suite needs, as "package|glob of a file that shows it
# is already installed". Add new services here (e.g. openssh-server|/usr/sbin/sshd,
# chromium|/usr/bin/chromium, prometheus|/usr/bin/prometheus,
# coturn|/usr/bin/turnserver).
APT_PACKAGES=(
  "postgresql|/usr/lib/postgresql/*/bin/postgres"
  "openssh-server|/usr/sbin/sshd"
  "openssh-client|/usr/bin/ssh-keygen"
  "pebble|/usr/bin/pebble"
  "coturn|/usr/bin/turnserver"
  "iproute2|/usr/sbin/ip"
  "openssl|/usr/bin/openssl"
  "prometheus|/usr/bin/prometheus"
  "chromium|/usr/bin/chromium"
)

log() { printf '[test-deps] %s\n' "$*" >&2; }

is_present() {
  compgen -G "$1" >/dev/null
}

install_apt_packages() {
  local missing=() entry pkg probe
  for entry in "${APT_PACKAGES[@]}"; do
    pkg="${entry%%|*}"
    probe="${entry#*|}"
    if is_present "$probe"; then
      : # already installed
    else
      missing+=("$pkg")
    fi
  done
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  if ! command -v apt-get >/dev/null; then
    log "missing system packages (${missing[*]}) and no apt-get to install them: install them with your package manager"
    exit 1
  fi
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then sudo=(sudo); else
      log "missing system packages: run  apt-get install -y ${missing[*]}  as root, then npm test again"
      exit 1
    fi
  fi
  log "installing: ${missing[*]}"
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
  for entry in "${APT_PACKAGES[@]}"; do
    if ! is_present "${entry#*|}"; then
      log "package ${entry%%|*} installed but ${entry#*|} is still missing"
      exit 1
    fi
  done
}

install_apt_packages
