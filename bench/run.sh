#!/usr/bin/env bash
# npm run bench: every benchmark in turn, or the ones named (npm run bench -- proxy-miss).
set -euo pipefail
cd "$(dirname "$0")"
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(proxy-miss cache-hit intercept connect fronts dns rules-load)
for n in "${names[@]}"; do
  echo "== $n"
  if [ -f "./$n.mjs" ]; then (cd .. && npm run build >/dev/null && node --expose-gc "bench/$n.mjs"); else bash "./$n.sh"; fi
done
