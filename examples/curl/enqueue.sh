#!/usr/bin/env bash
# Enqueue a job over HTTP and wait for its result: enqueue.sh [TASK] [ARGS_JSON] [QUEUE]
# (by default math.add(2, 3), which a Python worker of examples/tasks.py runs).
# ERRANDS_API is the API's base URL, ERRANDS_TOKEN its bearer token (if it has any).
set -euo pipefail

api=${ERRANDS_API:-http://127.0.0.1:8080/api/v1}
task=${1:-math.add}
args=${2:-[2, 3]}
queue=${3:-default}
auth=()
if [[ -n ${ERRANDS_TOKEN:-} ]]; then auth=(-H "Authorization: Bearer $ERRANDS_TOKEN"); fi

request=$(jq -cn --arg task "$task" --argjson args "$args" --arg queue "$queue" \
  '{task: $task, args: $args, queue: $queue}')
id=$(curl -sS --fail-with-body "${auth[@]}" -H 'Content-Type: application/json' \
  -d "$request" "$api/jobs" | jq -r '.jobs[0].id')
echo "enqueued $task as job $id" >&2

# A long poll: the reply comes as soon as the job is done, or after 30 s with it still waiting.
while :; do
  job=$(curl -sS --fail-with-body "${auth[@]}" "$api/jobs/$id/wait?timeout=30")
  [[ $(jq -r .done <<<"$job") == true ]] && break
done
state=$(jq -r .state <<<"$job")
if [[ $state != completed ]]; then
  echo "job $id ended $state: $(jq -c '.errors[-1]' <<<"$job")" >&2
  exit 1
fi
jq -c .result <<<"$job"
