#!/usr/bin/env bash
# Installs the tools the chart tests and the kind end-to-end run need, from the Go module
# proxy (the only place this project's machines can get them from): helm, kind, kubeconform.
#
# Idempotent: each tool is built once per pinned version into $BOCAGE_TOOLS_DIR/bin (default
# ~/.cache/bocage/tools/bin) and skipped afterwards. Prints that directory on stdout last, so
#   export PATH="$(infra/kind/install-tools.sh | tail -n1):$PATH"
# puts the tools on the PATH. Usage: install-tools.sh [helm] [kind] [kubeconform] (default: all).
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
KIND_VERSION="${KIND_VERSION:-v0.30.0}"
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-v0.7.0}"

TOOLS_DIR="${BOCAGE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bocage/tools}"
BIN="$TOOLS_DIR/bin"
mkdir -p "$BIN"

command -v go >/dev/null || { echo "install-tools: go is needed (1.24 or newer)" >&2; exit 1; }

log() { echo "install-tools: $*" >&2; }

# A stamp file per tool records the version built, so a re-run costs nothing and a version bump
# rebuilds.
installed() { [[ -x "$BIN/$1" && -f "$BIN/.$1.version" && "$(cat "$BIN/.$1.version")" == "$2" ]]; }

build() { # name version module-path [go install args...]
    local name=$1 version=$2 pkg=$3
    shift 3
    if installed "$name" "$version"; then
        log "$name $version already in $BIN"
        return
    fi
    log "building $name $version (go install $pkg@$version)"
    local start=$SECONDS
    GOBIN="$BIN" GOFLAGS=-mod=mod CGO_ENABLED=0 go install -trimpath "$@" "$pkg@$version"
    echo "$version" >"$BIN/.$name.version"
    log "$name $version built in $((SECONDS - start))s"
}

install_helm() {
    # helm's own Makefile stamps its version and the Kubernetes version of its client-go into the
    # binary; `go install` alone would leave `helm version` empty and the default KubeVersion at
    # v1.20, so the chart's kubeVersion constraint would fail. Read client-go's version from helm's
    # go.mod (the module cache has it after `go mod download`).
    local gomod client_go major minor
    gomod=$(GOFLAGS=-mod=mod go mod download -json "helm.sh/helm/v3@$HELM_VERSION" |
        sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
    client_go=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod")
    [[ $client_go =~ ^v0\.([0-9]+)\. ]] || { log "cannot read client-go version from $gomod"; exit 1; }
    major=1
    minor=${BASH_REMATCH[1]}
    build helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm -ldflags "-s -w \
        -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
        -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
        -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$major \
        -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor \
        -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$major \
        -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
}

install_kind() { build kind "$KIND_VERSION" sigs.k8s.io/kind -ldflags "-s -w"; }

install_kubeconform() {
    build kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform \
        -ldflags "-s -w -X main.version=$KUBECONFORM_VERSION"
}

tools=("$@")
[[ ${#tools[@]} -gt 0 ]] || tools=(helm kind kubeconform)
for tool in "${tools[@]}"; do
    case "$tool" in
        helm) install_helm ;;
        kind) install_kind ;;
        kubeconform) install_kubeconform ;;
        *) log "unknown tool: $tool (helm, kind, kubeconform)"; exit 2 ;;
    esac
done
echo "$BIN"
