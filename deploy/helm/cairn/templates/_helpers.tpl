{{/*
Chart name, truncated to 63 characters (DNS label limit).
*/}}
{{- define "cairn.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: <release>-<chart> unless the release name already
contains the chart name. Truncated to 63 characters.
*/}}
{{- define "cairn.fullname" -}}
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
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "cairn.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels (immutable on the Deployment once installed). The component
label keeps the server's Service from selecting pods that Cairn itself creates.
*/}}
{{- define "cairn.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cairn.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/*
Common labels.
*/}}
{{- define "cairn.labels" -}}
helm.sh/chart: {{ include "cairn.chart" . }}
{{ include "cairn.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: cairn
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Name of the service account to use.
*/}}
{{- define "cairn.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cairn.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Container image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "cairn.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/*
Container port, taken from the port of config.listen ("0.0.0.0:8080" -> 8080).
*/}}
{{- define "cairn.containerPort" -}}
{{- $port := regexFind "[0-9]+$" (.Values.config.listen | toString) }}
{{- if not $port }}
{{- fail (printf "config.listen must be HOST:PORT, got %q" (.Values.config.listen | toString)) }}
{{- end }}
{{- $port }}
{{- end }}

{{/*
Checks on required values; included by the Deployment.
*/}}
{{- define "cairn.validateValues" -}}
{{- if not .Values.database.existingSecret }}
{{- fail "database.existingSecret is required: create a Secret holding the PostgreSQL URL under the key DATABASE_URL (or set database.secretKey) and pass --set database.existingSecret=<name>. The embedded PostgreSQL is for single hosts only." }}
{{- end }}
{{- if not .Values.database.secretKey }}
{{- fail "database.secretKey must not be empty (default: DATABASE_URL)" }}
{{- end }}
{{- if not (has .Values.config.executor (list "kubernetes" "local")) }}
{{- fail (printf "config.executor must be \"kubernetes\" or \"local\", got %q" (.Values.config.executor | toString)) }}
{{- end }}
{{- end }}

{{/*
A map as KEY=VALUE,KEY=VALUE (sorted keys), for CAIRN_K8S_NODE_SELECTOR.
*/}}
{{- define "cairn.keyValues" -}}
{{- $pairs := list -}}
{{- range $k, $v := . -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
