#!/usr/bin/env bash
# Brings berth up in the background on its default data directory (unless it
# is already up), deploys the example stack and shows it answering.
set -euo pipefail
cd "$(dirname "$0")/.."
berth=bin/berth

data="${BERTH_DATA_DIR:-}"
if [ -z "$data" ]; then
  if [ "$(id -u)" = 0 ]; then data=/var/lib/berth; else data="${XDG_STATE_HOME:-$HOME/.local/state}/berth"; fi
fi
export BERTH_DATA_DIR="$data"
mkdir -p "$data"

if ! "$berth" ls >/dev/null 2>&1; then
  echo "starting berth up (data in $data, log in $data/berth.log)"
  nohup "$berth" up --data-dir "$data" >>"$data/berth.log" 2>&1 &
  echo $! >"$data/berth.pid"
  for _ in $(seq 1 100); do
    "$berth" ls >/dev/null 2>&1 && break
    if ! kill -0 "$(cat "$data/berth.pid")" 2>/dev/null; then
      echo "berth up exited; last lines of $data/berth.log:" >&2
      tail -n 20 "$data/berth.log" >&2
      exit 1
    fi
    sleep 0.2
  done
fi

"$berth" deploy -f examples/hello/compose.yaml
echo
"$berth" status hello
addr=$("$berth" ps hello --json | sed -n 's/.*"address": "\([0-9.]*\)".*/\1/p' | head -n1)
echo
echo "The example answers (berth routes no public port until the ingress lands; the host reaches task addresses directly):"
echo "  curl http://$addr:8080/"
if command -v curl >/dev/null; then curl -fsS "http://$addr:8080/"; fi
echo
echo "berth keeps running in the background (pid $(cat "$data/berth.pid" 2>/dev/null || echo '?')); try:"
echo "  $berth ps hello;  $berth scale hello web=5;  $berth events hello;  $berth rm hello"
