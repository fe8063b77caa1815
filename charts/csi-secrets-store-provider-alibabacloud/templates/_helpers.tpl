{{/* Chart name, overridable; also the `app` selector label (kept from the existing chart so
     `helm upgrade` over it keeps the DaemonSet's immutable selector). */}}
{{- define "csspa.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified name, same rule as the existing chart. */}}
{{- define "csspa.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The ServiceAccount name is fixed: RAM roles' RRSA trust policies name it. */}}
{{- define "csspa.serviceAccountName" -}}
csi-secrets-store-provider-alibabacloud
{{- end -}}

{{- define "csspa.selectorLabels" -}}
app: {{ include "csspa.name" . }}
{{- end -}}

{{- define "csspa.labels" -}}
{{ include "csspa.selectorLabels" . }}
app.kubernetes.io/name: {{ include "csspa.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
{{- end -}}

{{/* Where the RRSA token is projected (the provider's --rrsa-token-file default); the volume
     and the file keep the official chart's name. */}}
{{- define "csspa.rrsaTokenDir" -}}/var/run/secrets/tokens{{- end -}}
{{- define "csspa.rrsaTokenVolume" -}}csi-secrets-store-provider-alibabacloud{{- end -}}

{{/* The placeholder the ACK marketplace replaces with the cluster's region. */}}
{{- define "csspa.regionPlaceholder" -}}__ACK_REGION_ID__{{- end -}}

{{/* The --region to pass: regionId unless empty or the unreplaced placeholder (the provider
     then uses the node's own region). */}}
{{- define "csspa.region" -}}
{{- if ne (toString .Values.regionId) (include "csspa.regionPlaceholder" .) -}}
{{- .Values.regionId -}}
{{- end -}}
{{- end -}}

{{/* rrsa.accountId as text. `--set rrsa.accountId=123456789012` gives a number, and a number
     from a values file a float that would print as 1.23456789012e+11. */}}
{{- define "csspa.rrsaAccountId" -}}
{{- $id := .Values.rrsa.accountId -}}
{{- if kindIs "string" $id -}}{{ $id }}{{- else if not (kindIs "invalid" $id) -}}{{ $id | int64 }}{{- end -}}
{{- end -}}

{{/* Where a custom KMS CA bundle is mounted. */}}
{{- define "csspa.kmsCaDir" -}}/etc/ack-secrets-provider/kms-ca{{- end -}}

{{/* Health and metrics bind to all interfaces of the pod's own network namespace; on the
     host network that would expose them on every node address, so bind to the pod IP. */}}
{{- define "csspa.bindAddr" -}}
{{- if .Values.linux.hostNetwork -}}$(POD_IP){{- end -}}
{{- end -}}

{{/* Fail early on combinations the schema cannot express. */}}
{{- define "csspa.validate" -}}
{{- if and .Values.kmsCaBundle.configMap.name .Values.kmsCaBundle.secret.name -}}
{{- fail "kmsCaBundle: set either configMap.name or secret.name, not both" -}}
{{- end -}}
{{- /* The ACK marketplace replaces the placeholder everywhere; a regionId set by hand while the
       driver's images keep it means they cannot be pulled and the CRD hook Jobs would hang. */ -}}
{{- $driver := index .Values "secrets-store-csi-driver" -}}
{{- $placeholder := include "csspa.regionPlaceholder" . -}}
{{- $region := include "csspa.region" . -}}
{{- if and $region $driver.install (contains $placeholder (toJson $driver)) -}}
{{- fail (printf "secrets-store-csi-driver values still contain the placeholder %s (the ACK marketplace replaces it) while regionId is %s: the driver and its CRD hook Jobs could not pull their images. Replace it in the chart's values: helm show values CHART | sed 's/%s/%s/g' > region-values.yaml, then pass -f region-values.yaml before your own values file (docs/installation.md)." $placeholder $region $placeholder $region) -}}
{{- end -}}
{{- /* A values file written for the official chart pins its Go image, which exits on this
       chart's flags: refuse instead of crash-looping on every node. */ -}}
{{- if and .Values.linux.enabled (eq (base .Values.linux.image.repository) "secrets-store-csi-driver-provider-alibaba-cloud") -}}
{{- fail (printf "linux.image.repository is %s, the official Go provider's image: it does not know this chart's flags (--log-format, --metrics-port, --cache-ttl, --events, ...) and would exit on every node. Remove linux.image (repository and tag) from your values file to run this chart's provider image, or point linux.image.repository and linux.image.tag at your own build of it. To keep the Go provider, keep the official chart." .Values.linux.image.repository) -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled .Values.metrics.podMonitor.enabled -}}
{{- fail "metrics: enable either serviceMonitor or podMonitor, not both (each provider would be scraped twice)" -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled .Values.linux.hostNetwork -}}
{{- fail "networkPolicy.enabled: a NetworkPolicy does not apply to pods with linux.hostNetwork: true; set linux.hostNetwork to false or filter the node's traffic instead (docs/operations.md, NetworkPolicy)" -}}
{{- end -}}
{{- end -}}

{{/* The provider pods' port that serves /metrics: the metrics port, or the health port (which
     serves /metrics too) when the metrics port is off. */}}
{{- define "csspa.metricsPortName" -}}
{{- ternary "metrics" "healthz" .Values.metrics.enabled -}}
{{- end -}}

{{/* The scrape endpoint shared by the ServiceMonitor and the PodMonitor: a fixed `job` (the
     alerts select on it, whatever the release is named) and the `node` label they group by. */}}
{{- define "csspa.scrapeEndpoint" -}}
- port: {{ include "csspa.metricsPortName" .root }}
  path: /metrics
  {{- with .monitor.interval }}
  interval: {{ . }}
  {{- end }}
  {{- with .monitor.scrapeTimeout }}
  scrapeTimeout: {{ . }}
  {{- end }}
  relabelings:
    - action: replace
      targetLabel: job
      replacement: csi-secrets-store-provider-alibabacloud
    - action: replace
      sourceLabels: [__meta_kubernetes_pod_node_name]
      targetLabel: node
{{- end -}}
