#!/bin/sh
# Example exec actuator: canary runs it with an argv (no shell in between)
# and this environment (docs/cli.md, "exec actuator"):
#   CANARY_ROLLOUT CANARY_SERVICE CANARY_VERSION CANARY_PREVIOUS_VERSION
#   CANARY_STAGE (0 on rollback) CANARY_WEIGHT (percent, 0 on rollback)
#   CANARY_ACTION (advance | rollback | complete)
# Exit 0 when the weight is applied; anything else is retried with backoff.
# A real one would rewrite a load balancer's weights here; this one logs.
set -eu
printf '%s %s %s: %s stage %s weight %s%%\n' "$(date -u +%FT%TZ)" \
    "$CANARY_ROLLOUT" "$CANARY_SERVICE" "$CANARY_ACTION" "$CANARY_STAGE" \
    "$CANARY_WEIGHT" >&2
