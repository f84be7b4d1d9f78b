#!/usr/bin/env bash
# npm run bench: every benchmark in turn, or the ones named (npm run bench -- proxy-miss).
set -euo pipefail
cd "$(dirname "$0")"
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(proxy-miss)
for n in "${names[@]}"; do
  echo "== $n"
  bash "./$n.sh"
done
