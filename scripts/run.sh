#!/usr/bin/env bash
# Started by `make run`: two fake providers, stellwerk and Envoy on 127.0.0.1,
# with the demo config examples/stellwerk.yaml and Envoy booted from
# envoy/bootstrap.yaml. Ctrl-C stops everything this script started.
#
# Environment: ENVOY, BIN, PYTHON (set by make), STELLWERK_CONFIG (default
# examples/stellwerk.yaml), STELLWERK_LISTEN (default 127.0.0.1:10000),
# STELLWERK_ADMIN_TOKEN (the admin API's token; default: a new random one).
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG="${STELLWERK_CONFIG:-examples/stellwerk.yaml}"
LISTEN="${STELLWERK_LISTEN:-127.0.0.1:10000}"
LOGS=.tools/run
mkdir -p "$LOGS"
chmod 700 "$LOGS"

# Demo keys for the fake providers; stellwerk injects them, clients never see them.
export MOCK_US_API_KEY="${MOCK_US_API_KEY:-sk-mock-us-demo}"
export MOCK_EU_API_KEY="${MOCK_EU_API_KEY:-sk-mock-eu-demo}"
# The admin API's token (role admin in examples/stellwerk.yaml): random per run
# unless given, printed below. Only /healthz and /readyz answer without it.
export STELLWERK_ADMIN_TOKEN="${STELLWERK_ADMIN_TOKEN:-adm-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}"
# A viewer token for a Prometheus scraping /metrics (docs/observability.md).
export STELLWERK_METRICS_TOKEN="${STELLWERK_METRICS_TOKEN:-prm-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}"

pids=()
stopping=
cleanup() {
  stopping=1
  trap - INT TERM EXIT
  echo
  echo "stopping ..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped."
}
trap cleanup INT TERM EXIT

start() { # name, command...
  local name=$1; shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  pids+=($!)
}

start mock-us "$BIN" mock-provider --listen 127.0.0.1:8081 --name mock-us --api-key-env MOCK_US_API_KEY --chunk-delay 40ms
start mock-eu "$BIN" mock-provider --listen 127.0.0.1:8082 --name mock-eu --api-key-env MOCK_EU_API_KEY --chunk-delay 40ms
# Envoy reaches stellwerk on a Unix socket only processes of this user can
# open (docs/security.md); the bootstrap is envoy/bootstrap.yaml with its path.
SOCKET="$PWD/$LOGS/grpc.sock"
sed "s#/run/stellwerk/grpc.sock#$SOCKET#" envoy/bootstrap.yaml >"$LOGS/envoy-bootstrap.yaml"
start stellwerk "$BIN" serve --config "$CONFIG" --listen "$LISTEN" --grpc "unix://$SOCKET" --state-dir "$LOGS/state"
start envoy "$ENVOY" -c "$LOGS/envoy-bootstrap.yaml" --log-level "${ENVOY_LOG_LEVEL:-warn}" --disable-hot-restart

for _ in $(seq 1 100); do
  if curl -fsS "http://$LISTEN/v1/models" >/dev/null 2>&1; then ready=1; break; fi
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "a process exited during start-up; its log:" >&2
      tail -n 20 "$LOGS"/*.log >&2
      exit 1
    fi
  done
  sleep 0.1
done
if [[ -z "${ready:-}" ]]; then
  echo "Envoy did not start listening on $LISTEN; logs in $LOGS/" >&2
  tail -n 20 "$LOGS"/*.log >&2
  exit 1
fi

cat <<MSG

  stellwerk is running.

    OpenAI API (Envoy)   http://$LISTEN/v1
    console              http://127.0.0.1:9180/console/   (sign in with the admin token)
    stellwerk admin      http://127.0.0.1:9180/status   (also /version /policy /config /metrics /debug/vars)
    admin token          $STELLWERK_ADMIN_TOKEN   (role admin; /healthz and /readyz need none)
    metrics token        $STELLWERK_METRICS_TOKEN   (role viewer, for a Prometheus scraping /metrics)
    Envoy admin          http://127.0.0.1:9901
    logs                 $LOGS/{envoy,stellwerk,mock-us,mock-eu}.log

  Try it with curl:

    curl -s http://$LISTEN/v1/chat/completions \\
      -H 'content-type: application/json' \\
      -d '{"model":"auto","messages":[{"role":"user","content":"Hello, stellwerk!"}]}'

  Make the US fake provider fail, and watch Envoy carry the request to the next allowed model
  (x-stellwerk-attempts: 2; routing.attempts says what happened):

    curl -s -XPOST http://127.0.0.1:8081/_mock/behavior -d '{"status":503}'
    curl -s -i http://$LISTEN/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model":"auto","messages":[{"role":"user","content":"Hello, stellwerk!"}]}'
    curl -s -XPOST http://127.0.0.1:8081/_mock/behavior -d '{}'     # heal it

  Keep a request in the EU (the shipped Rego policy enforces it; see the routing object):

    curl -s http://$LISTEN/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model":"auto","policy":{"residency":"eu"},"messages":[{"role":"user","content":"Hallo!"}]}'

  Read the admin API (docs/security.md):

    curl -s -H "Authorization: Bearer $STELLWERK_ADMIN_TOKEN" http://127.0.0.1:9180/status

  See why without sending anything:  bin/stellwerk explain --config $CONFIG examples/requests/eu-cost.json

  The CLI on this stack's state (keys, spend, audit, replay, routes) takes the same flags as serve:

    bin/stellwerk keys create --config $CONFIG --state-dir $LOGS/state --workspace legal
    bin/stellwerk spend --config $CONFIG --state-dir $LOGS/state --since 1d --group-by model

  or with the official OpenAI Python SDK (installed in $PYTHON):

    $PYTHON - <<'PY'
from openai import OpenAI
client = OpenAI(base_url="http://$LISTEN/v1", api_key="unused-for-now")
r = client.chat.completions.with_raw_response.create(
    model="auto", messages=[{"role": "user", "content": "Hello, stellwerk!"}])
print(r.parse().choices[0].message.content, "| routed to", r.headers["x-stellwerk-model"])
for chunk in client.chat.completions.create(model="mock-eu-large", stream=True,
        messages=[{"role": "user", "content": "Stream to me"}]):
    print(chunk.choices[0].delta.content or "", end="", flush=True)
print()
PY

  Models: auto, mock-gpt (mock-us), mock-eu-large (mock-eu), gpt-4o-mini (needs OPENAI_API_KEY)
  in $CONFIG; for embeddings mock-embed and mock-embed-eu, for legacy completions mock-instruct.
  Press Ctrl-C to stop.

MSG

wait -n "${pids[@]}" || true
# Ctrl-C reaches every process of the group: a stop the user asked for is quiet.
[ -n "$stopping" ] || echo "a process stopped unexpectedly; see $LOGS/" >&2
