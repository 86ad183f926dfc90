#!/usr/bin/env bash
# Build FerretDB v1 (a MongoDB wire-protocol server over SQLite) into .bin/ferretdb.
# Debian has no mongod; FerretDB is the sandbox's MongoDB-protocol server (see servers.md).
# `go install` of the module panics at start-up because the module zip lacks the generated
# build/version/version.txt, so we build from a writable copy of the module with that file.
set -euo pipefail
VERSION="${FERRETDB_VERSION:-v1.24.2}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/.bin/ferretdb"
if [[ -x "$BIN" ]] && "$BIN" --version 2>/dev/null | grep -q "${VERSION}"; then
  exit 0
fi
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
command -v go >/dev/null || { echo "install-ferretdb: needs Go >= 1.22 (the machine image ships it in /usr/local/go)" >&2; exit 1; }
export GOFLAGS=-mod=mod
dir="$(go mod download -json "github.com/FerretDB/FerretDB@${VERSION}" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
[[ -d "$dir" ]] || { echo "install-ferretdb: module download failed" >&2; exit 1; }
src="$(mktemp -d)"
trap 'chmod -R u+w "$src"; rm -rf "$src"' EXIT
cp -r "$dir/." "$src/"
chmod -R u+w "$src"
echo "${VERSION}" > "$src/build/version/version.txt"
echo "datatier-sandbox" > "$src/build/version/package.txt"
mkdir -p "$ROOT/.bin"
(cd "$src" && go build -trimpath -o "$BIN" ./cmd/ferretdb)
"$BIN" --version
