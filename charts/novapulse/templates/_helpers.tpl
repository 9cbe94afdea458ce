{{/* Names, labels and the RBAC rules shared by the templates. */}}

{{- define "novapulse.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s-operator" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "novapulse.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: novapulse-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: novapulse
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "novapulse.selectorLabels" -}}
app.kubernetes.io/name: novapulse-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "novapulse.serviceAccountName" -}}
{{- default (include "novapulse.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "novapulse.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "novapulse.clusterwide" -}}
{{- if not .Values.watchNamespaces }}true{{ end -}}
{{- end -}}

{{- define "novapulse.webhookService" -}}
{{- printf "%s-webhook" (include "novapulse.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The rights the operator needs in every namespace it serves — exactly docs/operator.md's list.
*/}}
{{- define "novapulse.namespacedRules" -}}
- apiGroups: [novapulse.io]
  resources: [tradingbots, tradingbots/status]
  verbs: [get, list, watch, patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, delete]
- apiGroups: [""]
  resources: [configmaps, services, serviceaccounts, persistentvolumeclaims]
  verbs: [get, create, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, create, patch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, create, patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{- define "novapulse.webhookSecretName" -}}
{{- default (printf "%s-webhook-tls" (include "novapulse.fullname" .)) .Values.webhook.certificate.existingSecret -}}
{{- end -}}
