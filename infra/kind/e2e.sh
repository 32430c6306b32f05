#!/usr/bin/env bash
# End-to-end test of the Helm chart on a kind cluster:
#   create the cluster (infra/kind/kind-config.yaml) -> build the image -> kind load ->
#   helm upgrade --install --wait (charts/bocage/ci/kind-values.yaml) -> helm test ->
#   smoke: a simulated gateway publishes frames, they are stored and served by the API ->
#   helm upgrade again (pre-upgrade migrations, generated password kept) -> helm test ->
#   delete the cluster.
#
# Needs a Docker engine, kubectl, and kind + helm (built by infra/kind/install-tools.sh when not
# on the PATH). Each run installs into a namespace of its own.
#
# Environment:
#   KIND_CLUSTER        cluster name (default bocage-e2e)
#   E2E_REUSE_CLUSTER   1: use the cluster if it exists, and leave it (only the namespace goes)
#   E2E_KEEP            1: keep the cluster and the namespace afterwards (debugging)
#   E2E_IMAGE           image reference to build and load (default bocage:e2e)
#   E2E_SKIP_BUILD      1: the image is already built
#   E2E_TIMEOUT         helm --timeout (default 10m)
#   E2E_HELM_ARGS       extra arguments of `helm upgrade --install`, e.g.
#                       "--set networkPolicy.enabled=false" where the CNI wrongly applies the
#                       policies to the kubelet's probes (kind issue #3875)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

CLUSTER=${KIND_CLUSTER:-bocage-e2e}
IMAGE=${E2E_IMAGE:-bocage:e2e}
TIMEOUT=${E2E_TIMEOUT:-10m}
RELEASE=bocage
NAMESPACE="bocage-e2e-$(date +%s)-$$"
CHART=charts/bocage
VALUES=$CHART/ci/kind-values.yaml
CREATED_CLUSTER=0
START=$SECONDS

say() { printf '\033[1me2e [%4ss]:\033[0m %s\n' "$((SECONDS - START))" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# kind and helm from the tools cache when they are not installed.
if ! command -v kind >/dev/null || ! command -v helm >/dev/null; then
    PATH="$("$ROOT/infra/kind/install-tools.sh" helm kind | tail -n1):$PATH"
fi
for tool in docker kind kubectl helm; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info)"

diagnose() {
    say "diagnostics of namespace $NAMESPACE"
    kubectl --namespace "$NAMESPACE" get all,pvc,networkpolicy,events -o wide || true
    helm --namespace "$NAMESPACE" status "$RELEASE" || true
    local pod
    for pod in $(kubectl --namespace "$NAMESPACE" get pods -o name 2>/dev/null); do
        echo "----- $pod" >&2
        kubectl --namespace "$NAMESPACE" describe "$pod" | tail -n 25 || true
        kubectl --namespace "$NAMESPACE" logs "$pod" --all-containers --tail=100 || true
    done
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ "$status" -ne 0 ] && kubectl get namespace "$NAMESPACE" >/dev/null 2>&1; then
        diagnose
    fi
    if [ "${E2E_KEEP:-0}" = 1 ]; then
        say "kept: cluster $CLUSTER, namespace $NAMESPACE (kubectl config use-context kind-$CLUSTER)"
    elif [ "$CREATED_CLUSTER" = 1 ]; then
        say "deleting cluster $CLUSTER"
        kind delete cluster --name "$CLUSTER" || true
    else
        say "deleting namespace $NAMESPACE"
        helm --namespace "$NAMESPACE" uninstall "$RELEASE" --wait --timeout 2m >/dev/null 2>&1 || true
        kubectl delete namespace "$NAMESPACE" --wait=false >/dev/null 2>&1 || true
    fi
    say "$([ "$status" -eq 0 ] && echo passed || echo "failed ($status)") in $((SECONDS - START))s"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    [ "${E2E_REUSE_CLUSTER:-0}" = 1 ] \
        || die "cluster $CLUSTER exists: delete it, or set E2E_REUSE_CLUSTER=1 to use it"
    say "using the existing cluster $CLUSTER"
else
    say "creating cluster $CLUSTER"
    CREATED_CLUSTER=1
    kind create cluster --name "$CLUSTER" --config infra/kind/kind-config.yaml --wait 180s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

if [ "${E2E_SKIP_BUILD:-0}" != 1 ]; then
    say "building $IMAGE (infra/docker/Dockerfile, target datacenter)"
    docker build --file infra/docker/Dockerfile --target datacenter --tag "$IMAGE" .
fi
say "loading $IMAGE into the nodes"
kind load docker-image "$IMAGE" --name "$CLUSTER"

read -r -a extra_args <<<"${E2E_HELM_ARGS:-}"
helm_install() {
    helm upgrade --install "$RELEASE" "$CHART" \
        --namespace "$NAMESPACE" --create-namespace \
        --values "$VALUES" \
        --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
        --wait --wait-for-jobs --timeout "$TIMEOUT" \
        ${extra_args[@]+"${extra_args[@]}"}
}

secret_password() {
    kubectl --namespace "$NAMESPACE" get secret "$RELEASE-clickhouse-auth" \
        -o jsonpath='{.data.password}'
}

say "installing release $RELEASE in namespace $NAMESPACE"
helm_install
say "helm test"
helm test "$RELEASE" --namespace "$NAMESPACE" --timeout 5m --logs

say "smoke: a simulated gateway publishes, ingest stores, the API serves"
NAMESPACE="$NAMESPACE" RELEASE="$RELEASE" IMAGE="$IMAGE" infra/kind/smoke.sh

say "upgrading the release (pre-upgrade migrations; the generated password must be kept)"
before=$(secret_password)
[ -n "$before" ] || die "the ClickHouse Secret has no password"
helm_install
after=$(secret_password)
[ "$before" = "$after" ] || die "the upgrade changed the generated ClickHouse password"
[ "$(helm --namespace "$NAMESPACE" history "$RELEASE" --max 1 -o json | grep -oE '"revision":[0-9]+')" = '"revision":2' ] \
    || die "the upgrade did not make revision 2"
say "helm test after the upgrade"
helm test "$RELEASE" --namespace "$NAMESPACE" --timeout 5m --logs
