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
echo
echo "The example answers through berth's ingress (published port 8080, and the HTTP route hello.localhost):"
echo "  curl http://127.0.0.1:8080/"
ok=
for _ in $(seq 1 50); do
  if out=$(curl -fsS http://127.0.0.1:8080/ 2>/dev/null); then echo "$out"; ok=1; break; fi
  sleep 0.2
done
[ -n "$ok" ] || { echo "the example did not answer on 127.0.0.1:8080; see $berth ps hello and $data/berth.log" >&2; exit 1; }
echo "  curl -H 'Host: hello.localhost' http://127.0.0.1/"
curl -fsS -H 'Host: hello.localhost' http://127.0.0.1/ || echo "(the HTTP route needs berth up's --http-addr, :80 by default)"
echo
echo "berth keeps running in the background (pid $(cat "$data/berth.pid" 2>/dev/null || echo '?')); try:"
echo "  $berth ps hello;  $berth scale hello web=5;  $berth events hello;  $berth rm hello"
