#!/usr/bin/env bash
# Work a queue through the pull API: worker.sh [QUEUE] (by default "shout").
# Each job's first argument is upper-cased (the handler, in jq) and stored as its result;
# a job whose argument is not a string is reported as failed, and retried by its policy.
# ERRANDS_API is the API's base URL, ERRANDS_TOKEN its bearer token (if it has any);
# EXIT_WHEN_IDLE=1 stops after a claim that waited in vain.
set -euo pipefail

api=${ERRANDS_API:-http://127.0.0.1:8080/api/v1}
queue=${1:-shout}
worker="curl-$(hostname)-$$"
auth=()
if [[ -n ${ERRANDS_TOKEN:-} ]]; then auth=(-H "Authorization: Bearer $ERRANDS_TOKEN"); fi
post() { curl -sS "${auth[@]}" -H 'Content-Type: application/json' -d "$2" "$api/$1"; }

claim=$(jq -cn --arg worker "$worker" '{worker_id: $worker, n: 1, lease: 30, wait: 10}')
while :; do
  # Held by the server for up to `wait` seconds until a job is ready: no busy polling.
  job=$(post "queues/$queue/claim" "$claim" | jq -c '.jobs[0] // empty')
  if [[ -z $job ]]; then
    [[ -n ${EXIT_WHEN_IDLE:-} ]] && exit 0
    continue
  fi
  id=$(jq -r .id <<<"$job")
  token=$(jq -r .token <<<"$job")
  if result=$(jq -ce '.args[0] | ascii_upcase' <<<"$job" 2>/dev/null); then
    outcome=$(jq -cn --arg token "$token" --argjson result "$result" \
      '{token: $token, outcome: "completed", result: $result}')
  else
    outcome=$(jq -cn --arg token "$token" \
      '{token: $token, outcome: "failed", error: {type: "TypeError", message: "not a string"}}')
  fi
  # 409 means the lease was lost (too slow, and another worker has the job): drop it.
  echo "job $id: $(post "jobs/$id/finish" "$outcome" | jq -c .)" >&2
done
