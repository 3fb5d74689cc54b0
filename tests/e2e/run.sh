#!/usr/bin/env bash
# tests/e2e/run.sh: examples/nginx-prometheus end to end, against real nginx
# and real Prometheus (`make e2e`; tests/e2e/README.md). Each scenario gets
# a directory of its own under one mktemp directory, free 127.0.0.1 ports,
# and fresh processes: the stable service (v1), the canary service, nginx,
# Prometheus, a load generator for the users, and `canary run`.
#
#   healthy          v2 is promoted to 100%; afterwards nginx sends >= 99% of
#                    a window of requests to v2
#   faulty-errors    v3 answers 20% 5xx: rolled back at stage 1, >= 99% on v1
#                    afterwards; the failed requests users saw are counted
#   faulty-latency   v3 adds 300 ms: rolled back at stage 1 by p99 latency
#   prometheus-down  Prometheus is killed once stage 1 has passing measurements:
#                    rolled back, never promoted, the provider's error named
#
# Prints PASS/FAIL lines with what was measured and exits 1 on any failure.
# Every process it starts runs in its own process group and is stopped on
# every exit, failure and signal included. E2E_KEEP=1 keeps the directory.
set -uo pipefail
set -m # background jobs get their own process groups: stop whole groups

SRC=${CANARY_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
CANARY=${CANARY_BIN:-$SRC/build/canary}
EXAMPLES=${CANARY_EXAMPLES_DIR:-$SRC/build/examples}
HELPERS=${CANARY_E2E_DIR:-$SRC/build/e2e}
EX=$SRC/examples/nginx-prometheus
RATE=${E2E_RATE:-100}       # user requests a second through nginx
WINDOW=${E2E_WINDOW:-5}     # seconds of load counted after a rollout
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
PROMETHEUS=$(command -v prometheus || echo /usr/bin/prometheus)

now_ms() { date +%s%3N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
START_MS=$(now_ms)
FAILS=0
pass() { printf 'PASS %s\n' "$*"; }
fail() {
    printf 'FAIL %s\n' "$*"
    FAILS=$((FAILS + 1))
}
info() { printf '     %s\n' "$*"; }

# ---- prerequisites: fail, never skip --------------------------------------

missing=""
for x in "$NGINX" "$PROMETHEUS" "$(command -v curl || echo curl)"; do
    [ -x "$x" ] || missing="$missing $(basename "$x")"
done
if [ -n "$missing" ]; then
    echo "FAIL e2e cannot run: missing$missing; as root, \`make e2e\` installs them" \
        "(apt-get install nginx prometheus curl)"
    exit 1
fi
for x in "$CANARY" "$EXAMPLES/service" "$EXAMPLES/loadgen" "$HELPERS/freeport"; do
    if [ ! -x "$x" ]; then
        echo "FAIL e2e cannot run: $x is not built; run \`make e2e\`"
        exit 1
    fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/canary-e2e.XXXXXX") || exit 1
chmod 755 "$TMP" # nginx's workers run as nobody when the test is root

# ---- processes -------------------------------------------------------------

PGIDS=() # one per started process group, in start order
NAMES=()

# start NAME LOG COMMAND...: runs COMMAND from $SRC in a process group of its
# own, output to LOG; sets LAST_PID (= its process group id).
start() {
    local name=$1 log=$2
    shift 2
    (cd "$SRC" && exec "$@") >"$log" 2>&1 </dev/null &
    LAST_PID=$!
    PGIDS+=("$LAST_PID")
    NAMES+=("$name")
}

alive() { kill -0 -- "-$1" 2>/dev/null; }

# stop PGID [SIGNAL]: SIGNAL (TERM) to the group, then KILL after 15 s. A
# canary run that gets TERM rolls back first, through nginx: stop it before
# nginx. (A KILL is waited for in the same redirected block: bash would
# otherwise print "Killed" for the job.)
stop() {
    local g=$1 sig=${2:-TERM} i=0
    alive "$g" || { wait "$g" 2>/dev/null; return 0; }
    if [ "$sig" = KILL ]; then
        { kill -KILL -- "-$g"; wait "$g"; } 2>/dev/null
        return 0
    fi
    kill "-$sig" -- "-$g" 2>/dev/null
    while alive "$g" && [ $i -lt 150 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    alive "$g" && { kill -KILL -- "-$g"; wait "$g"; } 2>/dev/null
    wait "$g" 2>/dev/null
    return 0
}

# Processes whose command line names our directory: what a process group
# kill could miss (canary's actuator runs in a group of its own).
strays() {
    local p
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = $$ ] && continue
        tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF "$TMP" && echo "${p#/proc/}"
    done
}

cleanup() {
    local code=$? i left
    trap - EXIT INT TERM
    for ((i = ${#PGIDS[@]} - 1; i >= 0; i--)); do
        stop "${PGIDS[$i]}"
    done
    left=$(strays)
    if [ -n "$left" ]; then
        # shellcheck disable=SC2086 # a list of pids
        echo "FAIL e2e left processes running:" $left "(killed now)"
        # shellcheck disable=SC2086
        kill -KILL $left 2>/dev/null
        code=1
    fi
    for ((i = 0; i < ${#PGIDS[@]}; i++)); do
        if alive "${PGIDS[$i]}"; then
            echo "FAIL e2e could not stop ${NAMES[$i]} (process group ${PGIDS[$i]})"
            code=1
        fi
    done
    if [ "$code" = 0 ] && [ "${E2E_KEEP:-0}" = 0 ]; then
        rm -rf "$TMP"
    else
        echo "e2e: files kept in $TMP"
    fi
    echo "e2e: stopped ${#PGIDS[@]} process groups; total $(secs "$START_MS" "$(now_ms)") s"
    exit "$code"
}
trap cleanup EXIT
trap 'echo "e2e: interrupted"; exit 130' INT
trap 'echo "e2e: terminated"; exit 143' TERM

# until_ok SECONDS WHAT COMMAND...: retries COMMAND every 0.1 s.
until_ok() {
    local limit=$(($1 * 10)) what=$2 i=0
    shift 2
    until "$@"; do
        i=$((i + 1))
        if [ $i -ge $limit ]; then
            fail "$SCENARIO: $what within $((limit / 10)) s"
            return 1
        fi
        sleep 0.1
    done
}

http_ok() { curl -sf -o /dev/null --max-time 1 "$1"; }
body_is() { [ "$(curl -s --max-time 1 "$1")" = "$2" ]; }
# prom_has QUERY: the instant query returns at least one series.
prom_has() {
    curl -s --max-time 2 "http://127.0.0.1:$PROM_PORT/api/v1/query" \
        --data-urlencode "query=$1" | grep -q '"result":\[{'
}
log_has() { grep -qE "$2" "$1" 2>/dev/null; }

# ---- counts ----------------------------------------------------------------

# jtop FILE KEY: a top-level number of loadgen's JSON (written before its
# "by_version" object, whose keys repeat).
jtop() {
    local j
    j=$(cat "$1")
    j=${j%%\"by_version\"*}
    printf '%s' "$j" | grep -o "\"$2\":[0-9]*" | head -n 1 | cut -d: -f2
}
# jver FILE VERSION requests|failed: one version's count (0 when absent).
jver() {
    local m
    m=$(grep -o "\"$2\":{\"requests\":[0-9]*,\"failed\":[0-9]*}" "$1" | head -n 1)
    [ -n "$m" ] || { echo 0; return; }
    if [ "$3" = requests ]; then
        printf '%s' "$m" | sed 's/.*"requests":\([0-9]*\).*/\1/'
    else
        printf '%s' "$m" | sed 's/.*"failed":\([0-9]*\).*/\1/'
    fi
}
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b ? 100 * a / b : 0 }'; }
at_least_99() { [ "$2" -gt 0 ] && [ $((100 * $1)) -ge $((99 * $2)) ]; }

# ---- one scenario ------------------------------------------------------------

# setup NAME CHANGE VERSION SERVICE_FLAGS...: the example's files with this
# scenario's ports and directory, the six processes, load flowing, and
# Prometheus seeing the stable version's traffic.
setup() {
    SCENARIO=$1 CHANGE=$2 VERSION=$3
    shift 3
    DIR=$TMP/$SCENARIO
    mkdir -p "$DIR/nginx" "$DIR/prom"
    local ports
    ports=$("$HELPERS/freeport" 4) || { fail "$SCENARIO: no free ports"; return 1; }
    read -r NGINX_PORT STABLE_PORT CANARY_PORT PROM_PORT <<<"$ports"
    local f sub=(-e "s/127\.0\.0\.1:18080/127.0.0.1:$NGINX_PORT/g"
        -e "s/127\.0\.0\.1:18081/127.0.0.1:$STABLE_PORT/g"
        -e "s/127\.0\.0\.1:18082/127.0.0.1:$CANARY_PORT/g"
        -e "s/127\.0\.0\.1:19090/127.0.0.1:$PROM_PORT/g"
        -e "s#/tmp/canary-example#$DIR#g")
    sed "${sub[@]}" "$EX/nginx.conf" >"$DIR/nginx/nginx.conf"
    sed "${sub[@]}" "$EX/upstream.conf" >"$DIR/nginx/upstream.conf"
    sed "${sub[@]}" "$EX/prometheus.yml" >"$DIR/prom/prometheus.yml"
    for f in policy.yaml topology.yaml "$CHANGE"; do
        sed "${sub[@]}" "$EX/$f" >"$DIR/$f"
    done
    info "$SCENARIO: nginx :$NGINX_PORT, v1 :$STABLE_PORT, $VERSION :$CANARY_PORT${*:+ ($*)}," \
        "Prometheus :$PROM_PORT, in $DIR"

    start stable "$DIR/stable.log" "$EXAMPLES/service" --port "$STABLE_PORT" --version v1
    start canary-service "$DIR/canary.log" "$EXAMPLES/service" --port "$CANARY_PORT" \
        --version "$VERSION" "$@"
    start nginx "$DIR/nginx/stderr.log" "$NGINX" -p "$DIR/nginx/" -c "$DIR/nginx/nginx.conf" \
        -e "$DIR/nginx/error.log" -g "daemon off;"
    start prometheus "$DIR/prom/prometheus.log" "$PROMETHEUS" \
        --config.file="$DIR/prom/prometheus.yml" --storage.tsdb.path="$DIR/prom/data" \
        --web.listen-address="127.0.0.1:$PROM_PORT"
    PROM_PID=$LAST_PID
    until_ok 10 "v1 answers on :$STABLE_PORT" http_ok "http://127.0.0.1:$STABLE_PORT/metrics" &&
        until_ok 10 "$VERSION answers on :$CANARY_PORT" \
            http_ok "http://127.0.0.1:$CANARY_PORT/metrics" &&
        until_ok 10 "nginx on :$NGINX_PORT sends to v1" \
            body_is "http://127.0.0.1:$NGINX_PORT/" "v1 200" &&
        until_ok 30 "Prometheus ready on :$PROM_PORT" \
            http_ok "http://127.0.0.1:$PROM_PORT/-/ready" || return 1
    start users "$DIR/users.log" "$EXAMPLES/loadgen" --url "http://127.0.0.1:$NGINX_PORT/" \
        --rate "$RATE" --out "$DIR/users.json"
    USERS_PID=$LAST_PID
    # Prometheus starts scraping ~5 s after it is ready (its discovery
    # updates are throttled); canary needs both versions' series and the
    # stable one's rate before stage 1.
    local ready='count(up{job="shop"} == 1) == 2 and on()'
    ready="$ready sum(rate(http_requests_total{service=\"shop\",version=\"v1\"}[15s])) > 0"
    until_ok 40 "Prometheus scrapes both versions and sees v1's traffic" prom_has "$ready"
}

# run_canary: `canary run` in the background; CANARY_PID.
run_canary() {
    RUN_START=$(now_ms)
    start canary-run "$DIR/run.log" "$CANARY" run --change "$DIR/$CHANGE" \
        --topology "$DIR/topology.yaml" --policy "$DIR/policy.yaml" --state "$DIR/state.db"
    CANARY_PID=$LAST_PID
}

# finish_canary: waits for canary run; RUN_RC, RUN_SECS; stops the users'
# load and reports what they saw.
finish_canary() {
    wait "$CANARY_PID"
    RUN_RC=$?
    RUN_SECS=$(secs "$RUN_START" "$(now_ms)")
    stop "$USERS_PID"
    local id=${CHANGE#change-}
    ID=shop-${id%.yaml}
    (cd "$SRC" && "$CANARY" status "$ID" --state "$DIR/state.db") >"$DIR/status.txt" 2>&1
    (cd "$SRC" && "$CANARY" explain "$ID" --state "$DIR/state.db") >"$DIR/explain.txt" 2>&1
    USERS_REQ=$(jtop "$DIR/users.json" requests)
    USERS_FAILED=$(jtop "$DIR/users.json" failed)
    USERS_5XX=$(jtop "$DIR/users.json" http_5xx)
    USERS_RETRIED=$(jtop "$DIR/users.json" retried)
    if [ -z "$USERS_REQ" ]; then
        fail "$SCENARIO: the users' load generator wrote no counts ($DIR/users.log)"
        USERS_REQ=0 USERS_FAILED=0 USERS_5XX=0 USERS_RETRIED=0
    fi
}

# after WANT_VERSION WANT_PORT: a fresh window of load once canary is done
# (its actuator returned only when the last weights were in effect); >= 99%
# must come from WANT_VERSION, by the load generator and by nginx's log.
after() {
    local want=$1 port=$2 n0 n1 got total by_log log_total
    n0=$(wc -l <"$DIR/nginx/access.log")
    start window "$DIR/window.log" "$EXAMPLES/loadgen" --url "http://127.0.0.1:$NGINX_PORT/" \
        --rate "$RATE" --duration "$WINDOW" --out "$DIR/window.json"
    wait "$LAST_PID"
    n1=$(wc -l <"$DIR/nginx/access.log")
    total=$(jtop "$DIR/window.json" requests)
    got=$(jver "$DIR/window.json" "$want" requests)
    log_total=$((n1 - n0))
    by_log=$(awk -v a="$n0" -v b="$n1" -v up="127.0.0.1:$port" \
        'NR > a && NR <= b && $2 == up { n++ } END { print n + 0 }' "$DIR/nginx/access.log")
    if at_least_99 "${got:-0}" "${total:-0}" && at_least_99 "$by_log" "$log_total"; then
        pass "$SCENARIO: afterwards nginx sends $got of $total requests to $want" \
            "($(pct "$got" "$total")%); its access log: $by_log of $log_total to :$port"
    else
        fail "$SCENARIO: afterwards only ${got:-0} of ${total:-0} requests went to $want" \
            "($(pct "${got:-0}" "${total:-0}")%, want >= 99%); access log: $by_log of" \
            "$log_total to :$port ($DIR/window.json, $DIR/nginx/access.log)"
    fi
}

# Event lines of the run log: "TIME TYPE DETAIL".
events() { awk -v t="$1" '$2 == t' "$DIR/run.log"; }
result_line() { grep '^result:' "$DIR/run.log" | tail -n 1; }

# rolled_back_at_stage_1 WHY_PATTERN: exit 3, no promotion, the only stage
# applied was stage 1, the rollback's reason matches, state rolled_back.
rolled_back_at_stage_1() {
    local applied reason
    applied=$(events stage_applied | sed -n 's/.*stage \([0-9]*\) of .*/\1/p' | tr '\n' ' ')
    reason=$(events rolling_back | head -n 1 | cut -d' ' -f3- | sed 's/^ *//')
    if [ "$RUN_RC" = 3 ] && [ "$applied" = "1 " ] && [ -z "$(events promoted)" ] &&
        [ -z "$(events completed)" ] && printf '%s' "$reason" | grep -qE "$1" &&
        log_has "$DIR/status.txt" 'rolled_back'; then
        pass "$SCENARIO: rolled back (exit 3) at stage 1 after $RUN_SECS s, never promoted:" \
            "$reason"
    else
        fail "$SCENARIO: want exit 3 and a rollback at stage 1 matching '$1'; got exit" \
            "$RUN_RC, stages applied: ${applied:-none}, promoted: $(events promoted | wc -l)," \
            "reason: ${reason:-none} ($DIR/run.log)"
    fi
}

users_report() {
    info "$SCENARIO: users sent $USERS_REQ requests during the rollout; $USERS_FAILED" \
        "failed ($USERS_5XX HTTP 5xx; by version: v1 $(jver "$DIR/users.json" v1 failed)," \
        "$VERSION $(jver "$DIR/users.json" "$VERSION" failed)); $USERS_RETRIED sent again after" \
        "a connection error"
}

scenario_healthy() {
    setup healthy change-v2.yaml v2 || return
    run_canary
    finish_canary
    local weights
    weights=$(events stage_applied | sed -n 's/.* serves \([0-9.]*%\).*/\1/p' | tr '\n' ' ')
    if [ "$RUN_RC" = 0 ] && [ -n "$(events completed)" ] && [ -z "$(events rolling_back)" ] &&
        log_has "$DIR/status.txt" 'completed'; then
        pass "$SCENARIO: promoted (exit 0) in $RUN_SECS s through stages at ${weights% }"
    else
        fail "$SCENARIO: want exit 0 and completed; got exit $RUN_RC: $(result_line)" \
            "($DIR/run.log)"
    fi
    after v2 "$CANARY_PORT"
    users_report
    if [ "$USERS_FAILED" = 0 ]; then
        pass "$SCENARIO: no user request failed ($USERS_REQ sent)"
    else
        fail "$SCENARIO: $USERS_FAILED of $USERS_REQ user requests failed ($DIR/users.json)"
    fi
}

# A fault users saw must come from the canary, and only from it.
fault_seen() {
    local from_canary
    from_canary=$(jver "$DIR/users.json" "$VERSION" failed)
    if [ "$USERS_FAILED" -gt 0 ] && [ "$from_canary" = "$USERS_FAILED" ]; then
        pass "$SCENARIO: users saw $USERS_FAILED failed requests of $USERS_REQ, all from" \
            "$VERSION, before the rollback"
    else
        fail "$SCENARIO: want some failed requests, all from $VERSION; got $USERS_FAILED" \
            "($from_canary from $VERSION) of $USERS_REQ"
    fi
}

scenario_faulty_errors() {
    setup faulty-errors change-v3.yaml v3 --error-ratio 0.2 || return
    run_canary
    finish_canary
    rolled_back_at_stage_1 'error-rate failed'
    after v1 "$STABLE_PORT"
    users_report
    fault_seen
}

scenario_faulty_latency() {
    setup faulty-latency change-v3.yaml v3 --added-latency-ms 300 || return
    run_canary
    finish_canary
    rolled_back_at_stage_1 'p99-latency-ms failed'
    after v1 "$STABLE_PORT"
    users_report
    if [ "$USERS_FAILED" = 0 ]; then
        pass "$SCENARIO: slow, not failed: no user request failed ($USERS_REQ sent)"
    else
        fail "$SCENARIO: $USERS_FAILED of $USERS_REQ user requests failed ($DIR/users.json)"
    fi
}

scenario_prometheus_down() {
    setup prometheus-down change-v2.yaml v2 || return
    run_canary
    # Once stage 1 serves and Prometheus has answered for it (a passing
    # measurement), Prometheus dies: the evidence so far must not carry
    # the stage through.
    if until_ok 20 "a passing measurement at stage 1" log_has "$DIR/run.log" \
        ' measurement .*stage 1: [a-z0-9-]*: pass'; then
        stop "$PROM_PID" KILL
        info "$SCENARIO: killed Prometheus (SIGKILL) $(secs "$RUN_START" "$(now_ms)") s" \
            "into the rollout, after $(grep -c ': pass' "$DIR/run.log") passing measurements at" \
            "stage 1"
    fi
    finish_canary
    rolled_back_at_stage_1 'provider errors in a row'
    # explain gives the evidence of the rollback: the provider's own error.
    local evidence
    evidence=$(tr '\n' ' ' <"$DIR/explain.txt" | grep -o 'The evidence: [^)]*)' | head -n 1)
    if printf '%s' "$evidence" | grep -q "connection refused (127.0.0.1:$PROM_PORT"; then
        pass "$SCENARIO: canary explain names Prometheus' error: $evidence)"
    else
        fail "$SCENARIO: canary explain does not name 'connection refused" \
            "(127.0.0.1:$PROM_PORT)' as the evidence ($DIR/explain.txt)"
    fi
    after v1 "$STABLE_PORT"
    users_report
}

echo "e2e: canary with nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') and Prometheus" \
    "$("$PROMETHEUS" --version 2>&1 | head -n 1 | awk '{print $3}'), $RATE requests/s," \
    "in $TMP"
for s in ${E2E_SCENARIOS:-healthy faulty_errors faulty_latency prometheus_down}; do
    t0=$(now_ms)
    "scenario_$s"
    info "${s//_/-}: $(secs "$t0" "$(now_ms)") s in all"
    # Stop this scenario's processes before the next one starts.
    for g in "${PGIDS[@]}"; do stop "$g"; done
done
if [ "$FAILS" = 0 ]; then
    echo "e2e: all scenarios passed"
else
    echo "e2e: $FAILS checks FAILED"
    exit 1
fi
