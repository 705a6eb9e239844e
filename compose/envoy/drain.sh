#!/usr/bin/env bash
# Envoy's entrypoint in the compose stack (and a pattern for a container
# that stops Envoy with SIGTERM): Envoy ends every stream at once on
# SIGTERM, so a stop cut the answers in flight, however long stellwerk's
# own drain (docs/deploy.md). This turns the stop into a drain: on SIGTERM
# it asks Envoy's admin API to drain its listeners gracefully (HTTP/1.1
# answers say Connection: close, HTTP/2 connections get GOAWAY), waits
# until no request is in flight on the client listener, at most
# DRAIN_SECONDS (default 300, envoy.request_timeout's default), and then
# stops Envoy. The container's stop grace period must be longer.
#
# Environment: ENVOY (default envoy), ENVOY_ADMIN_PORT (default 9901,
# envoy/bootstrap.yaml's), DRAIN_SECONDS, STAT_PREFIX (the client
# listener's connection manager's, default stellwerk). Arguments are
# Envoy's.
set -u
"${ENVOY:-envoy}" "$@" &
envoy_pid=$!
port="${ENVOY_ADMIN_PORT:-9901}"

# admin METHOD PATH: one request to Envoy's admin API (bash's /dev/tcp:
# the Envoy image has no curl), the answer on stdout. Each line is waited
# for 2 s at most: an admin port that takes the connection and says
# nothing does not hold the stop.
admin() {
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf '%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$1" "$2" >&3
  line=
  while IFS= read -r -t 2 line <&3 || [ -n "$line" ]; do printf '%s\n' "$line"; line=; done
  exec 3>&-
}

drain() {
  trap '' TERM INT
  echo "drain.sh: draining Envoy's listeners before it stops" >&2
  admin POST '/drain_listeners?graceful' >/dev/null
  deadline=$((SECONDS + ${DRAIN_SECONDS:-300}))
  while [ "$SECONDS" -lt "$deadline" ]; do
    active=$(admin GET "/stats?filter=^http\\.${STAT_PREFIX:-stellwerk}\\.downstream_rq_active\$" | sed -n 's/^.*downstream_rq_active: //p')
    [ "${active:-0}" = 0 ] && break
    sleep 1
  done
  echo "drain.sh: no request in flight (or DRAIN_SECONDS passed); stopping Envoy" >&2
  kill -TERM "$envoy_pid" 2>/dev/null
}
trap drain TERM INT
wait "$envoy_pid"
status=$?
# The trap ran while wait waited: wait for Envoy itself to end.
while kill -0 "$envoy_pid" 2>/dev/null; do wait "$envoy_pid"; status=$?; done
exit "$status"
