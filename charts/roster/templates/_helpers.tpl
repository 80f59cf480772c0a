{{/* Chart name, overridable. */}}
{{- define "roster.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the prefix of every object's name. */}}
{{- define "roster.fullname" -}}
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

{{- define "roster.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "roster.selectorLabels" -}}
app.kubernetes.io/name: {{ include "roster.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "roster.commonLabels" -}}
helm.sh/chart: {{ include "roster.chart" . }}
{{ include "roster.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: roster
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "roster.labels" -}}
{{ include "roster.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "roster.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "roster.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "roster.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "roster.leaseName" -}}
{{- .Values.leaderElection.leaseName | default (printf "%s-leader" (include "roster.fullname" . | trunc 56 | trimSuffix "-")) }}
{{- end }}

{{/* Where the config file is mounted; the container runs `roster run --config <this>`. */}}
{{- define "roster.configPath" -}}/etc/roster/config.yaml{{- end }}

{{/*
Settings that the operator reads only at start (src/config/schema.ts
restartKeys: leaderElection, namespaces, watch, sharding; and the probe engine's
probing.maxConcurrent, maxPerHost, maxAddressesPerName, dnsServers and dnsRefresh;
publishing.maxInflightWrites). Their checksum is a pod
annotation, so changing one of them rolls the pods; everything else in the
config file is hot-reloaded from the mounted ConfigMap without a restart.
The two halves are deep-merged into the config file (configmap.yaml).
*/}}
{{- define "roster.restartConfig" -}}
{{- $le := .Values.leaderElection }}
{{- $config := dict
  "leaderElection" (dict
    "enabled" $le.enabled
    "namespace" .Release.Namespace
    "leaseName" (include "roster.leaseName" .)
    "leaseDuration" $le.leaseDuration
    "renewDeadline" $le.renewDeadline
    "retryPeriod" $le.retryPeriod)
  "namespaces" (.Values.watchNamespaces | default list)
  "sharding" (dict
    "enabled" .Values.sharding.enabled
    "group" (include "roster.fullname" . | trunc 40 | trimSuffix "-")
    "leaseDuration" .Values.sharding.leaseDuration)
  "xds" (dict
    "enabled" .Values.xds.enabled
    "port" .Values.xds.port
    "maxStreams" .Values.xds.maxStreams
    "access" (.Values.xds.access | default list))
}}
{{- with .Values.xds.tls.secretName }}
{{- $tls := dict "certFile" (printf "%s/tls.crt" (include "roster.xdsTlsPath" $)) "keyFile" (printf "%s/tls.key" (include "roster.xdsTlsPath" $)) }}
{{- if $.Values.xds.tls.clientCaSecretName }}
{{- $_ := set $tls "clientCaFile" (printf "%s/ca.crt" (include "roster.xdsClientCaPath" $)) }}
{{- end }}
{{- $_ := set $config.xds "tls" $tls }}
{{- end }}
{{- with .Values.watch }}
{{- $_ := set $config "watch" . }}
{{- end }}
{{- /* The probe engine's limits are sized when it starts. */}}
{{- $probing := dict }}
{{- range $key := list "maxConcurrent" "maxPerHost" "maxAddressesPerName" "dnsServers" "dnsRefresh" }}
{{- if hasKey $.Values.probing $key }}
{{- $_ := set $probing $key (index $.Values.probing $key) }}
{{- end }}
{{- end }}
{{- with $probing }}
{{- $_ := set $config "probing" . }}
{{- end }}
{{- /* The write gate is sized when the client is made. */}}
{{- if hasKey .Values.publishing "maxInflightWrites" }}
{{- $_ := set $config "publishing" (dict "maxInflightWrites" .Values.publishing.maxInflightWrites) }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* Where the xds.tls Secrets are mounted. */}}
{{- define "roster.xdsTlsPath" -}}
/etc/roster/xds-tls
{{- end }}
{{- define "roster.xdsClientCaPath" -}}
/etc/roster/xds-client-ca
{{- end }}

{{/* Where the metrics.tls Secret is mounted. */}}
{{- define "roster.metricsTlsPath" -}}
/etc/roster/metrics-tls
{{- end }}

{{/* Settings applied live by the operator's config hot reload. */}}
{{- define "roster.liveConfig" -}}
{{- $metrics := dict "port" .Values.metrics.port "bindAddress" .Values.metrics.bindAddress "auth" .Values.metrics.auth }}
{{- if .Values.metrics.tls.secretName }}
{{- $_ := set $metrics "tls" (dict "certFile" (printf "%s/tls.crt" (include "roster.metricsTlsPath" .)) "keyFile" (printf "%s/tls.key" (include "roster.metricsTlsPath" .))) }}
{{- end }}
{{- $config := dict
  "logLevel" .Values.logLevel
  "metrics" $metrics
  "health" (dict "port" .Values.health.port "bindAddress" .Values.health.bindAddress)
}}
{{- with .Values.concurrency }}
{{- $_ := set $config "concurrency" . }}
{{- end }}
{{- with .Values.defaultPolicy }}
{{- $_ := set $config "defaultPolicy" . }}
{{- end }}
{{- /*
probing.secrets always follows probeSecrets.enabled, which also grants the
RBAC to read Secrets: the operator never tries reads it is refused, and
never lacks a grant it was given.
*/}}
{{- $probing := dict "secrets" .Values.probeSecrets.enabled }}
{{- with .Values.probing.destinations }}
{{- $_ := set $probing "destinations" . }}
{{- end }}
{{- $_ := set $config "probing" $probing }}
{{- with omit .Values.publishing "maxInflightWrites" }}
{{- $_ := set $config "publishing" . }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/*
What Roster does in each namespace it serves; the same rules go into the
ClusterRole (all namespaces) or into one Role per watched namespace.
*/}}
{{- define "roster.servedRules" -}}
# Read the API objects it reconciles.
- apiGroups: ["roster.dev"]
  resources: ["serviceinstances", "discoverypolicies"]
  verbs: ["get", "list", "watch"]
# deregisterAfter: delete instances that stayed unhealthy too long.
- apiGroups: ["roster.dev"]
  resources: ["serviceinstances"]
  verbs: ["delete"]
# Status is written through the status subresource only.
- apiGroups: ["roster.dev"]
  resources: ["serviceinstances/status", "discoverypolicies/status"]
  verbs: ["get", "update", "patch"]
# Owner references with blockOwnerDeletion on published objects need this
# where the OwnerReferencesPermissionEnforcement admission plugin is on.
- apiGroups: ["roster.dev"]
  resources: ["serviceinstances/finalizers", "discoverypolicies/finalizers"]
  verbs: ["update"]
# What it publishes: selector-less Services, EndpointSlices and ConfigMaps
# (server-side apply: create + patch; cache: list + watch).
- apiGroups: [""]
  resources: ["services", "configmaps"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# Heartbeat probes read the Leases that instances renew; read-only.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "list", "watch"]
# Events on instance transitions (events.k8s.io/v1, and core/v1 for older readers).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.probeSecrets.enabled }}
# probeSecrets.enabled: probe headers from Secrets, read by name on demand.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
{{- end }}
