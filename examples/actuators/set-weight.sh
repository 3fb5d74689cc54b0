#!/bin/sh
# Example exec actuator: canary runs it with an argv (no shell in between),
# stdin from /dev/null, in a process group of its own, and this environment
# (docs/policy.md, "actuator"):
#   CANARY_ROLLOUT CANARY_SERVICE CANARY_VERSION
#   CANARY_PREVIOUS_VERSION (empty when there is none)
#   CANARY_STAGE (1-based; 0 on rollback)
#   CANARY_WEIGHT (percent on the new version, e.g. 0.5 or 100; 0 on rollback)
#   CANARY_ACTION (advance | rollback | complete)
# Exit 0 when the weight is applied; anything else is retried with backoff.
# The policy's timeout ends it (SIGTERM to the group, SIGKILL a second
# later). The same stage may come again after a retry or a resume, so make
# the change idempotent: set the weight, do not add to it.
# stdout and stderr end up in the event log (the last 2 KiB of each try).
# A real one would rewrite a load balancer's weights here; this one logs.
set -eu
printf '%s %s %s: %s stage %s weight %s%%\n' "$(date -u +%FT%TZ)" \
    "$CANARY_ROLLOUT" "$CANARY_SERVICE" "$CANARY_ACTION" "$CANARY_STAGE" \
    "$CANARY_WEIGHT" >&2
