#!/usr/bin/env bash
# Builds a stand-in for the `python:3.11-slim-bookworm` base image on a machine that reaches Debian's package
# mirror but no container registry, so `deploy/Dockerfile` can be built and run for real with podman:
#
#   scripts/container-base.sh                     # once per machine (about a minute); needs root
#
# tests/test_container.py runs it when the image is missing, then builds and runs deploy/Dockerfile as below.
#   podman --runtime runc --cgroup-manager=cgroupfs build --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
#     -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro -f deploy/Dockerfile -t mediajobs .
#   podman --runtime runc --cgroup-manager=cgroupfs run --rm --network=none \
#     --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 mediajobs mediajobs --help
#
# The stand-in is Debian bookworm (minbase) with Debian's Python 3.11, pip and venv, `python`/`pip` on
# /usr/local/bin as in the official image, and pip allowed to install system-wide (as the official image does).
# It differs from the official image in Python's build (Debian's 3.11.2, not a source build in /usr/local).
# The flags above are what this kind of machine needs: crun cannot run here (hybrid cgroups), runc with
# cgroupfs can; the machine's TLS interception needs its CA bundle inside the build for pip; root here lacks
# CAP_SYS_RESOURCE, so podman's default rlimits (above ours) make runc fail ("error setting rlimit type 6"):
# `run` needs --ulimit values within the caller's (`ulimit -Hn`).
set -euo pipefail
TAG=${1:-docker.io/library/python:3.11-slim-bookworm}
command -v podman >/dev/null && command -v debootstrap >/dev/null && command -v runc >/dev/null || {
  apt-get update -qq && apt-get install -y -qq podman debootstrap runc >/dev/null; }
if podman image exists "$TAG"; then echo "$TAG exists"; exit 0; fi
# The Debian mirror this machine's apt already uses.
mirror=$(grep -hoE '^URIs: *\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' \
  | grep -v security | head -n1)
[ -n "$mirror" ] || mirror=$(grep -hoE '^deb +\S+' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n1)
[ -n "$mirror" ] || { echo "no Debian mirror found in apt's sources" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3.11,python3-pip,python3-venv,ca-certificates bookworm "$root" "$mirror" >/dev/null
rm -f "$root"/usr/lib/python3.11/EXTERNALLY-MANAGED "$root"/var/cache/apt/archives/*.deb
ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python"
ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python3"
ln -sf /usr/bin/pip3 "$root/usr/local/bin/pip"
tar -C "$root" -c . | podman import --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' - "$TAG" >/dev/null
echo "built $TAG"
