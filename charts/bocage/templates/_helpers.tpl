{{/* vim: set filetype=mustache: */}}
{{/*
Name of the chart, or nameOverride. Kubernetes names are at most 63 characters.
*/}}
{{- define "bocage.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: release-chart, 63 characters at most (DNS label). A release whose
name already contains the chart name is not repeated (release "bocage" -> "bocage").
*/}}
{{- define "bocage.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of one component's resources: fullname-component, 63 characters at most. Called with
(dict "root" $ "component" "api").
*/}}
{{- define "bocage.componentName" -}}
{{- printf "%s-%s" (include "bocage.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of a StatefulSet: 52 characters at most, because Kubernetes builds the
controller-revision-hash label (63 at most) from it plus an 11-character suffix.
*/}}
{{- define "bocage.statefulSetName" -}}
{{- printf "%s-%s" (include "bocage.fullname" .root) .component | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/*
Chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "bocage.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable for the life of a release (Deployment selectors are immutable).
*/}}
{{- define "bocage.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bocage.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels of every resource.
*/}}
{{- define "bocage.labels" -}}
helm.sh/chart: {{ include "bocage.chart" . }}
{{ include "bocage.selectorLabels" . }}
app.kubernetes.io/version: {{ include "bocage.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/part-of: bocage
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels of one component. Called with (dict "root" $ "component" "api").
*/}}
{{- define "bocage.componentSelectorLabels" -}}
{{ include "bocage.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Labels of one component's resources. Called with (dict "root" $ "component" "api").
*/}}
{{- define "bocage.componentLabels" -}}
{{ include "bocage.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Name of the ServiceAccount of the bocage pods.
*/}}
{{- define "bocage.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "bocage.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Tag of the bocage image: image.tag, or the chart's appVersion.
*/}}
{{- define "bocage.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/*
Reference of the bocage image; a digest wins over the tag.
*/}}
{{- define "bocage.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "bocage.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
Host names of the bundled servers (Services in the release's namespace).
*/}}
{{- define "bocage.nats.serviceName" -}}
{{- include "bocage.componentName" (dict "root" . "component" "nats") }}
{{- end }}

{{- define "bocage.clickhouse.serviceName" -}}
{{- include "bocage.componentName" (dict "root" . "component" "clickhouse") }}
{{- end }}

{{/*
URL of NATS: config.nats.url if set, else the bundled server. Fails the render when neither.
*/}}
{{- define "bocage.nats.url" -}}
{{- if .Values.config.nats.url }}
{{- .Values.config.nats.url }}
{{- else if .Values.nats.enabled }}
{{- printf "nats://%s.%s.svc:%d" (include "bocage.nats.serviceName" .) .Release.Namespace (int .Values.nats.service.port) }}
{{- else }}
{{- fail "nats.enabled is false: set config.nats.url to the URL of your NATS cluster" }}
{{- end }}
{{- end }}

{{/*
HTTP URL of ClickHouse, without credentials: the bundled server or clickhouse.external.url.
*/}}
{{- define "bocage.clickhouse.url" -}}
{{- if .Values.clickhouse.enabled }}
{{- printf "http://%s.%s.svc:8123" (include "bocage.clickhouse.serviceName" .) .Release.Namespace }}
{{- else if .Values.clickhouse.external.url }}
{{- .Values.clickhouse.external.url | trimSuffix "/" }}
{{- else }}
{{- fail "clickhouse.enabled is false: set clickhouse.external.url (e.g. http://clickhouse:8123)" }}
{{- end }}
{{- end }}

{{/*
Name of the Secret holding the ClickHouse credentials.
*/}}
{{- define "bocage.clickhouse.secretName" -}}
{{- if .Values.clickhouse.auth.existingSecret }}
{{- .Values.clickhouse.auth.existingSecret }}
{{- else }}
{{- include "bocage.componentName" (dict "root" . "component" "clickhouse-auth") }}
{{- end }}
{{- end }}

{{/*
The settings rendered into bocage.toml: what the chart knows (NATS URL, database, where the API
and the ingest and indicators metrics listen), overridden by .Values.config.
*/}}
{{- define "bocage.settings" -}}
{{- $computed := dict
  "nats" (dict "url" (include "bocage.nats.url" .))
  "store" (dict "database" .Values.clickhouse.database)
  "api" (dict "host" "0.0.0.0" "port" (int .Values.api.port))
  "ingest" (dict "metrics_port" (int .Values.ingest.metricsPort))
  "indicators" (dict "metrics_port" (int .Values.indicators.metricsPort))
-}}
{{- with .Values.api.ingress }}
{{- if and .enabled .hosts }}
{{- /* The address users reach the API at: absolute links, the DCAT catalogue. */}}
{{- $_ := set $computed.api "public_url" (printf "%s://%s" (ternary "https" "http" (not (empty .tls))) (first .hosts).host) }}
{{- end }}
{{- end }}
{{- $settings := mustMergeOverwrite $computed (deepCopy .Values.config) -}}
{{- if hasKey $settings.store "dsn" }}
{{- fail "config.store.dsn must not be set: the DSN is built from clickhouse.auth (a Secret)" }}
{{- end }}
{{- toJson $settings }}
{{- end }}

{{/*
A TOML document from a map: scalars first, then tables and arrays of tables, recursively.
Called with (dict "table" $map "path" "") — path is the dotted name of the enclosing table.
Helm reads YAML numbers as floats: integral values are written as TOML integers.
*/}}
{{- define "bocage.toml.table" -}}
{{- $path := .path -}}
{{- $table := .table -}}
{{- range $key := keys $table | sortAlpha }}
{{- $value := get $table $key }}
{{- /* Empty tables are left out: every section has defaults. TOML has no null: skipped. */}}
{{- if not (or (kindIs "map" $value) (and (kindIs "slice" $value) (gt (len $value) 0) (kindIs "map" (first $value))) (kindIs "invalid" $value)) }}
{{ include "bocage.toml.key" $key }} = {{ include "bocage.toml.value" $value }}
{{- end }}
{{- end }}
{{- range $key := keys $table | sortAlpha }}
{{- $value := get $table $key }}
{{- $name := ternary (include "bocage.toml.key" $key) (printf "%s.%s" $path (include "bocage.toml.key" $key)) (eq $path "") }}
{{- if and (kindIs "map" $value) (gt (len $value) 0) }}
{{ printf "[%s]" $name }}
{{- include "bocage.toml.table" (dict "table" $value "path" $name) }}
{{- else if and (kindIs "slice" $value) (gt (len $value) 0) (kindIs "map" (first $value)) }}
{{- range $item := $value }}
{{ printf "[[%s]]" $name }}
{{- include "bocage.toml.table" (dict "table" $item "path" $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* A TOML key: bare when it can be, quoted otherwise. */}}
{{- define "bocage.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{/* A TOML value: string, boolean, integer, float or array of those. */}}
{{- define "bocage.toml.value" -}}
{{- if kindIs "string" . }}{{ toJson . }}
{{- else if kindIs "bool" . }}{{ ternary "true" "false" . }}
{{- else if or (kindIs "float64" .) (kindIs "float32" .) }}
{{- if eq (float64 .) (floor .) }}{{ int64 . }}{{ else }}{{ toJson . }}{{ end }}
{{- else if or (kindIs "int" .) (kindIs "int64" .) (kindIs "int32" .) (kindIs "uint64" .) }}{{ . }}
{{- else if kindIs "slice" . }}[{{ range $i, $v := . }}{{ if $i }}, {{ end }}{{ include "bocage.toml.value" $v }}{{ end }}]
{{- else }}{{ fail (printf "bocage.toml: cannot write %v (%s) as TOML" . (kindOf .)) }}
{{- end }}
{{- end }}

{{/*
bocage.toml, from bocage.settings.
*/}}
{{- define "bocage.configToml" -}}
# bocage.toml rendered by the {{ include "bocage.chart" . }} chart from its values (config.*).
# The store DSN comes from the environment (BOCAGE_STORE__DSN, from the ClickHouse Secret).
{{- include "bocage.toml.table" (dict "table" (include "bocage.settings" . | fromJson) "path" "") }}
{{ end }}

{{/*
Environment shared by every bocage container: the ClickHouse credentials from the Secret and
the DSN built from them (Kubernetes expands $(VAR) from variables defined before it).
*/}}
{{- define "bocage.env" -}}
- name: CLICKHOUSE_USER
  valueFrom:
    secretKeyRef:
      name: {{ include "bocage.clickhouse.secretName" . }}
      key: {{ .Values.clickhouse.auth.usernameKey }}
- name: CLICKHOUSE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "bocage.clickhouse.secretName" . }}
      key: {{ .Values.clickhouse.auth.passwordKey }}
- name: BOCAGE_STORE__DSN
  value: {{ include "bocage.clickhouse.url" . | replace "://" "://$(CLICKHOUSE_USER):$(CLICKHOUSE_PASSWORD)@" | quote }}
{{- with .Values.tracing.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Volumes and mounts shared by every bocage pod: the configuration and a writable /tmp (the root
filesystem is read-only).
*/}}
{{- define "bocage.volumes" -}}
- name: config
  configMap:
    name: {{ include "bocage.fullname" . }}
- name: tmp
  emptyDir: {}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "bocage.volumeMounts" -}}
- name: config
  mountPath: /etc/bocage
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Pod-level settings shared by the bocage Deployments: service account, pull secrets, security.
*/}}
{{- define "bocage.podSpecCommon" -}}
serviceAccountName: {{ include "bocage.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Scheduling of one component: node selector, affinity, tolerations, spread constraints (their
label selector defaults to the component's selector labels). Called with
(dict "root" $ "component" "api" "values" .Values.api).
*/}}
{{- define "bocage.scheduling" -}}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $selector := include "bocage.componentSelectorLabels" . | fromYaml }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints:
{{- range . }}
  - {{- toYaml (merge (deepCopy .) (dict "labelSelector" (dict "matchLabels" $selector))) | nindent 4 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Hook phases of the migrations Job: before install/upgrade with an external ClickHouse; after
install with the bundled one, which the install itself creates.
*/}}
{{- define "bocage.migrate.hooks" -}}
{{- if .Values.clickhouse.enabled }}post-install,pre-upgrade{{ else }}pre-install,pre-upgrade{{ end }}
{{- end }}
