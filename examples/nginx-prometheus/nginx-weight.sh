#!/bin/sh
# nginx-weight.sh: canary's exec actuator for examples/nginx-prometheus.
#
#   nginx-weight.sh NGINX_DIR STABLE_ADDR CANARY_ADDR
#
# Sets the weights of nginx's `app` upstream from CANARY_WEIGHT (percent on
# the canary, 0 to 100, e.g. 10 or 0.5) and reloads nginx, which was
# started as `nginx -p NGINX_DIR/ -c NGINX_DIR/nginx.conf -e NGINX_DIR/error.log`:
#
# 1. writes NGINX_DIR/upstream.conf whole (a temporary file, then mv) with
#    weights in thousandths: 10% is canary 100, stable 900. nginx refuses
#    weight=0, so at 0% (a rollback) the canary is left out, and at 100% the
#    stable version is;
# 2. checks the configuration (nginx -t); a bad one puts the previous file
#    back and fails;
# 3. reloads nginx and waits until every worker that served the previous
#    weights has exited (they finish their requests first), so that every
#    request after this script returns is routed by the new weights.
#
# Exits 0 when the weights are in effect, 1 otherwise (canary retries, then
# rolls back); what failed goes to stderr, which canary keeps in the event
# log. Setting the same weight again is harmless: canary may repeat a call
# after a crash. NGINX names the nginx binary (default: nginx on PATH, else
# /usr/sbin/nginx).
set -eu

fail() {
    echo "nginx-weight.sh: $*" >&2
    exit 1
}

[ $# -eq 3 ] || fail "usage: nginx-weight.sh NGINX_DIR STABLE_ADDR CANARY_ADDR (got $# arguments)"
dir=$1 stable=$2 canary=$3
weight=${CANARY_WEIGHT:?CANARY_WEIGHT is not set: canary sets it; by hand, CANARY_WEIGHT=0 restores stable}
nginx=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
conf="$dir/upstream.conf"
pidfile="$dir/nginx.pid"

# Thousandths of the traffic for the canary; a weight above 0 keeps at
# least one thousandth so that the canary is really in the upstream.
canary_w=$(awk -v w="$weight" 'BEGIN {
    if (w !~ /^[0-9]+(\.[0-9]+)?$/ || w + 0 > 100) exit 1
    c = int(w * 10 + 0.5); if (w > 0 && c < 1) c = 1
    print c }') || fail "CANARY_WEIGHT must be a percentage from 0 to 100, got '$weight'"
stable_w=$((1000 - canary_w))

[ -f "$dir/nginx.conf" ] || fail "no $dir/nginx.conf: copy the example's nginx.conf there"
master=$(cat "$pidfile" 2>/dev/null || true)
# shellcheck disable=SC2015 # fail is meant for either test failing
[ -n "$master" ] && kill -0 "$master" 2>/dev/null ||
    fail "nginx is not running (no live pid in $pidfile); start it: $nginx -p $dir/ -c $dir/nginx.conf -e $dir/error.log"

tmp="$conf.tmp.$$"
trap 'rm -f "$tmp" "$conf.prev.$$"' EXIT
{
    echo "# Written by nginx-weight.sh: ${CANARY_ACTION:-by hand} ${CANARY_ROLLOUT:-}" \
        "stage ${CANARY_STAGE:-?}, ${weight}% on the canary."
    echo "upstream app {"
    if [ "$stable_w" -gt 0 ]; then
        echo "    server $stable weight=$stable_w;  # stable ${CANARY_PREVIOUS_VERSION:-}"
    fi
    if [ "$canary_w" -gt 0 ]; then
        echo "    server $canary weight=$canary_w;  # canary ${CANARY_VERSION:-}"
    fi
    echo "}"
    echo "map \"\" \$canary_weight { default \"$weight\"; }"
} >"$tmp"
if [ -f "$conf" ]; then
    cp "$conf" "$conf.prev.$$"
fi
mv -f "$tmp" "$conf"
if ! out=$("$nginx" -t -q -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" 2>&1); then
    if [ -f "$conf.prev.$$" ]; then
        mv -f "$conf.prev.$$" "$conf"
    fi
    fail "nginx refused the new weights, the previous ones stay: $out"
fi

# The master's children before and after the reload: from /proc/PID/task/
# PID/children, or, on a kernel without it, from every process's parent in
# /proc/*/stat (after the name's closing parenthesis: state, then parent).
children() {
    if [ -r "/proc/$master/task/$master/children" ]; then
        cat "/proc/$master/task/$master/children"
        return
    fi
    for f in /proc/[0-9]*/stat; do
        line=$(cat "$f" 2>/dev/null) || continue
        # shellcheck disable=SC2086 # split on purpose: numbers and a state letter
        set -- ${line##*) }
        if [ "${2:-}" = "$master" ]; then
            p=${f#/proc/}
            printf '%s ' "${p%/stat}"
        fi
    done
}
old=$(children)
"$nginx" -s reload -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" ||
    fail "nginx -s reload failed"
# New workers start and the old ones finish their requests and exit; give
# them 10 s (a canary with added latency holds requests open).
i=0
while :; do
    now=$(children)
    left=""
    for pid in $old; do
        case " $now " in *" $pid "*) left="$left $pid" ;; esac
    done
    if [ -z "$left" ] && [ -n "$now" ]; then
        break
    fi
    i=$((i + 1))
    [ $i -le 200 ] || fail "nginx reloaded, but workers$left still serve the previous weights after 10 s"
    sleep 0.05
done
echo "nginx: ${weight}% on the canary (weights stable $stable_w, canary $canary_w of 1000)"
