#!/usr/bin/env bash
# Smoke test of a running release (called by e2e.sh; runs against any cluster):
#   a simulated gateway (`bocage edge run`, the release's image) publishes frames to NATS;
#   the readings must be stored in ClickHouse with nothing quarantined, and the API must serve
#   them: the register lists the gateway's sensors, sensor_availability is above 0.
# The gateway is the one declared in charts/bocage/ci/kind-values.yaml (config.register).
#
# Environment: NAMESPACE, RELEASE (default bocage), IMAGE (the bocage image),
#              SMOKE_TIMEOUT seconds (default 240).
set -euo pipefail

: "${NAMESPACE:?set NAMESPACE}"
: "${IMAGE:?set IMAGE}"
RELEASE=${RELEASE:-bocage}
TIMEOUT=${SMOKE_TIMEOUT:-240}
TERRITORY=29042
GATEWAY=gw-smoke
SAMPLES=120
START=$SECONDS

k() { kubectl --namespace "$NAMESPACE" "$@"; }
say() { printf '\033[1msmoke [%4ss]:\033[0m %s\n' "$((SECONDS - START))" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Resources of the release, found by their labels rather than by guessing the chart's names.
selector="app.kubernetes.io/instance=$RELEASE"
service_of() { # component -> the name of its client Service (not the headless one)
    k get service -l "$selector,app.kubernetes.io/component=$1" \
        -o jsonpath='{range .items[?(@.spec.clusterIP!="None")]}{.metadata.name}{"\n"}{end}' | head -n1
}
api=$(service_of api)
nats=$(service_of nats)
clickhouse=$(k get statefulset -l "$selector,app.kubernetes.io/component=clickhouse" \
    -o jsonpath='{.items[0].metadata.name}')
database=$(k get configmap -l "$selector" -o jsonpath='{.items[*].data.bocage\.toml}' \
    | sed -n 's/^database = "\(.*\)"$/\1/p' | head -n1)
if [ -z "$api" ] || [ -z "$nats" ] || [ -z "$clickhouse" ] || [ -z "$database" ]; then
    die "release $RELEASE in $NAMESPACE: api=$api nats=$nats clickhouse=$clickhouse database=$database"
fi

ch() { # one ClickHouse query, with the credentials the server container was given
    # shellcheck disable=SC2016 # expanded by the container's shell, not this one
    k exec "statefulset/$clickhouse" -c clickhouse -- sh -c \
        'clickhouse-client --user "$CLICKHOUSE_USER" --password "$CLICKHOUSE_PASSWORD" --query "$0"' "$1"
}

# Samples from three hours ago, one a minute, replayed at once: hours that have ended.
start_ms=$(( ($(date +%s) - 3 * 3600) * 1000 ))
pod=smoke-gateway
say "starting the simulated gateway $GATEWAY of territory $TERRITORY ($SAMPLES samples/sensor)"
k delete pod "$pod" --ignore-not-found --wait=true >/dev/null
k delete configmap "$pod" --ignore-not-found >/dev/null
k create configmap "$pod" --from-literal=edge.toml="$(cat <<TOML
[gateway]
id = "$GATEWAY"
territory = "$TERRITORY"

[nats]
url = "nats://$nats:4222"

[spool]
dir = "/var/lib/bocage/spool"

[batch]
max_age_s = 2.0

[[sensors]]
id = "smoke-lamp-1"
kind = "lighting_cabinet"
adapter = "simulator"
start_ms = $start_ms
step_ms = 60000
limit = $SAMPLES
realtime = false

[[sensors]]
id = "smoke-water-1"
kind = "water_meter"
adapter = "simulator"
start_ms = $start_ms
step_ms = 60000
limit = $SAMPLES
realtime = false
TOML
)" >/dev/null

k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: $pod
  labels:
    app.kubernetes.io/name: smoke-gateway
    app.kubernetes.io/part-of: bocage-e2e
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    fsGroup: 10001
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: gateway
      image: $IMAGE
      imagePullPolicy: IfNotPresent
      args: ["edge", "run", "--config", "/etc/bocage/edge.toml"]
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: ["ALL"]}
      volumeMounts:
        - {name: config, mountPath: /etc/bocage, readOnly: true}
        - {name: spool, mountPath: /var/lib/bocage}
        - {name: tmp, mountPath: /tmp}
  volumes:
    - {name: config, configMap: {name: $pod}}
    - {name: spool, emptyDir: {}}
    - {name: tmp, emptyDir: {}}
YAML
trap 'k logs "$pod" --tail=50 >&2 || true; k delete pod "$pod" --wait=false >/dev/null 2>&1 || true; k delete configmap "$pod" >/dev/null 2>&1 || true' EXIT
k wait --for=condition=Ready "pod/$pod" --timeout=120s >/dev/null

say "waiting for the readings in ClickHouse ($database.readings)"
count=0
while :; do
    count=$(ch "SELECT count() FROM $database.readings WHERE territory = '$TERRITORY' AND gateway = '$GATEWAY'" 2>/dev/null || echo 0)
    # The filters may drop unchanged values (deadband, heartbeat): not every sample is a row.
    [ "${count:-0}" -gt 0 ] && break
    [ $((SECONDS - START)) -lt "$TIMEOUT" ] || die "no reading of $GATEWAY stored after ${TIMEOUT}s"
    [ "$(k get pod "$pod" -o jsonpath='{.status.phase}')" = Running ] || die "the gateway pod stopped"
    sleep 3
done
sensors=$(ch "SELECT uniqExact(sensor) FROM $database.readings WHERE gateway = '$GATEWAY'")
quarantined=$(ch "SELECT count() FROM $database.quarantine WHERE gateway = '$GATEWAY'")
say "stored: $count readings of $sensors sensors; quarantined frames: $quarantined"
[ "$sensors" -eq 2 ] || die "expected readings of 2 sensors, got $sensors"
[ "$quarantined" -eq 0 ] || die "$quarantined frame(s) of $GATEWAY were quarantined: $(ch "SELECT reason, detail FROM $database.quarantine WHERE gateway = '$GATEWAY' LIMIT 3")"

# The API, from inside the cluster (the gateway pod has the image's Python).
api_get() {
    k exec "$pod" -- python -c '
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
    sys.stdout.write(response.read().decode())' "http://$api:8080$1"
}
say "GET /api/v1/sensors?territory=$TERRITORY"
api_get "/api/v1/sensors?territory=$TERRITORY" | python3 -c '
import json, sys
ids = sorted(entry["id"] for entry in json.load(sys.stdin))
assert ids == ["smoke-lamp-1", "smoke-water-1"], f"register entries: {ids}"
print("register:", ids)'

from=$(date -u -d '2 days ago' +%F)
to=$(date -u +%F)
say "GET /api/v1/indicators/sensor_availability?territory=$TERRITORY&from=$from&to=$to"
deadline=$((SECONDS + 60))
until api_get "/api/v1/indicators/sensor_availability?territory=$TERRITORY&from=$from&to=$to" \
    | python3 -c '
import json, sys
body = json.load(sys.stdin)
values = [v for v in body["values"] if v["territory"] == sys.argv[1]]
print("sensor_availability:", [(v["date"], v["value"]) for v in values])
sys.exit(0 if any(v["value"] > 0 for v in values) else 1)' "$TERRITORY"; do
    # Indicator answers are cached for [indicators] cache_seconds: ask again.
    [ "$SECONDS" -lt "$deadline" ] || die "sensor_availability stayed at 0 for $TERRITORY"
    sleep 5
done
say "passed"
