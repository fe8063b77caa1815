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

{{/* Where the RRSA token is projected; the provider's --rrsa-token-file default. */}}
{{- define "csspa.rrsaTokenDir" -}}/var/run/secrets/tokens{{- end -}}
{{- define "csspa.rrsaTokenName" -}}csi-secrets-store-provider-alibabacloud{{- end -}}

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
{{- end -}}
