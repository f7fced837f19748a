#!/usr/bin/env bash
# Installs the Debian packages the test suite and benchmarks use as black-box peers:
# kcat (a librdkafka client), python3-kafka (kafka-python, a pure-Python client that sends old
# request versions; test/kafka/kafka-python.test.ts runs it under /usr/bin/python3), etcd, NATS,
# and the zstd and lz4 command-line compressors (reference encoders for the decompression
# tests), and docker-compose (1.29, only to validate docker-compose.yml: no engine runs it),
# chromium (test/admin/dashboard.test.ts drives it headless with playwright-core), and openssl
# (test/helpers/tls-certs.ts makes the TLS tests' certificates with it).
# Idempotent; needs root (or sudo) and apt.
set -euo pipefail
PKGS=(kcat python3-kafka etcd-server etcd-client nats-server zstd lz4 docker-compose chromium openssl)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-tools: all present (${PKGS[*]})"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-tools: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
echo "install-tools: done"
