#!/usr/bin/env bash
# The Debian (bookworm) packages that the lab, the tests and the demo need, in one place: `make install`
# (and so `make demo` and `make test`) and .ci/run call this. It installs only what is missing: when every
# package is there it runs no apt-get and needs no root.
set -euo pipefail

# python3, python3-venv: the .venv of `make install`; openssh-server: every lab node runs a real sshd (the lab
# starts its own sshd processes from the package's binaries, the host's sshd service is not used);
# openssh-client: Ansible reaches the nodes over SSH; python3-yaml: the modules parse manifests with the nodes'
# system Python; python3-cryptography, openssl: the lab's kubeadm-like PKI; util-linux: unshare/nsenter;
# iproute2, procps: ip, ss and ps for looking into a lab (minimal images lack them); debian-archive-keyring: the lab fetches etcd builds
# from Debian's archive; rsync, make, git: the test command; ca-certificates, curl: downloads, and the demo and
# benchmark probe /readyz; age, zstd: encrypted and compressed backups (the lab's nodes use the host's
# binaries); shellcheck: ansible-test sanity lints shell scripts with it.
PACKAGES=(
  python3 python3-venv openssh-server openssh-client python3-yaml python3-cryptography openssl util-linux
  iproute2 procps debian-archive-keyring rsync make git ca-certificates curl age zstd shellcheck
)

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "error: this host has no dpkg: the lab and the tests expect Debian (bookworm); install the equivalents of: ${PACKAGES[*]}" >&2
  exit 1
fi

# One dpkg-query for every package; a package it does not know at all is missing too.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null || true)
missing=()
for package in "${PACKAGES[@]}"; do
  if ! grep -qx "${package} ii " <<<"${installed}"; then
    missing+=("${package}")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing system packages: ${missing[*]}" >&2
    echo "Install them as root, then run this again:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    echo "(or run the whole command as root: the lab, the demo and the integration tests need root anyway)" >&2
    exit 1
  fi
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# The lab fetches its own etcd builds; nothing named etcd may be on the host PATH.
for tool in etcd etcdctl etcdutl; do
  if command -v "${tool}" >/dev/null 2>&1; then
    echo "error: ${tool} is installed on this host ($(command -v "${tool}")); the lab's missing-tools tests need" \
      "it absent: remove it (e.g. apt-get remove etcd-client etcd-server) or take it off the PATH" >&2
    exit 1
  fi
done
