#!/usr/bin/env bash
# Build the sandbox's second MongoDB-protocol server ("mongo2") into .bin/mongo-java-server/:
# the jars of de.bwaldvogel:mongo-java-server (Maven Central, via `mvn dependency:copy-dependencies`
# of scripts/mongo-java-server/pom.xml) in lib/, and the small wrapper
# scripts/mongo-java-server/SandboxMongoServer.java compiled with javac into classes/.
# Cached: nothing is fetched or compiled again while the pom and the wrapper are unchanged.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SRC="$ROOT/scripts/mongo-java-server"
OUT="${DATATIER_MONGO_JAVA_SERVER:-$ROOT/.bin/mongo-java-server}"
for tool in java javac mvn; do
  command -v "$tool" >/dev/null || {
    echo "install-mongo-java-server: needs $tool (apt-get install openjdk-17-jdk-headless maven)" >&2
    exit 1
  }
done
stamp="$(cat "$SRC/pom.xml" "$SRC/SandboxMongoServer.java" | sha256sum | cut -c1-16)"
if [[ -f "$OUT/stamp" && "$(cat "$OUT/stamp")" == "$stamp" && -f "$OUT/classes/SandboxMongoServer.class" ]]; then
  exit 0
fi
tmp="$(mktemp -d "${OUT%/*}/.mongo-java-server.XXXXXX" 2>/dev/null || { mkdir -p "${OUT%/*}"; mktemp -d "${OUT%/*}/.mongo-java-server.XXXXXX"; })"
trap 'rm -rf "$tmp"' EXIT
# Maven's own output (progress, colour codes) only when it fails.
if ! log="$(mvn -q -B -f "$SRC/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$tmp/lib" -DincludeScope=runtime 2>&1)"; then
  echo "$log" >&2
  echo "install-mongo-java-server: mvn dependency:copy-dependencies failed" >&2
  exit 1
fi
mkdir -p "$tmp/classes"
javac -nowarn -d "$tmp/classes" -cp "$tmp/lib/*" "$SRC/SandboxMongoServer.java"
echo "$stamp" > "$tmp/stamp"
rm -rf "$OUT"
mv "$tmp" "$OUT"
trap - EXIT
echo "mongo-java-server: $(ls "$OUT/lib" | grep -c '\.jar$') jars and the wrapper in $OUT"
