{{/*
Names. Every object name comes from "damfleet.fullname" or "damfleet.componentname", so a
release's objects never collide and a component's objects share one name.
*/}}
{{- define "damfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "damfleet.fullname" -}}
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

{{/* A component's resource name: <fullname>-<component>, "_" made DNS-safe ("ai_enrich" -> "ai-enrich"). */}}
{{- define "damfleet.componentname" -}}
{{- printf "%s-%s" (include "damfleet.fullname" .root) (.component | replace "_" "-") | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "damfleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "damfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "damfleet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels for release-wide objects (ConfigMap, ServiceAccount). */}}
{{- define "damfleet.labels" -}}
helm.sh/chart: {{ include "damfleet.chart" . }}
app.kubernetes.io/name: {{ include "damfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: damfleet
{{- end -}}

{{/* Selector labels of one component; context: dict "root" $ "component" name. */}}
{{- define "damfleet.componentSelectorLabels" -}}
app.kubernetes.io/name: {{ include "damfleet.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component | replace "_" "-" }}
{{- end -}}

{{- define "damfleet.componentLabels" -}}
{{ include "damfleet.labels" .root }}
app.kubernetes.io/component: {{ .component | replace "_" "-" }}
{{- end -}}

{{/*
The effective settings of one component: every global default overlaid with the component's
own block. Maps listed in $nested are merged one level deep (the component wins key by key).
A value explicitly set to false or 0 in a component wins too, unlike sprig's merge/default,
which treat those as "unset". Context: dict "root" $ "c" $componentValues "out" $emptyDict;
the result is written into "out" (include output is discarded by the caller).
*/}}
{{- define "damfleet.effective" -}}
{{- $root := .root -}}
{{- $c := .c -}}
{{- $out := .out -}}
{{- $globals := list "replicaCount" "gracefulShutdownSeconds" "terminationGraceMarginSeconds" "concurrency" "resources" "nodeSelector" "tolerations" "affinity" "topologySpreadConstraints" "priorityClassName" "podAnnotations" "podLabels" "podSecurityContext" "securityContext" "probes" "podDisruptionBudget" "scratch" "gpu" "keda" "env" "extraVolumes" "extraVolumeMounts" -}}
{{- $nested := list "probes" "podDisruptionBudget" "scratch" "gpu" "keda" "env" -}}
{{- range $k, $v := $c -}}
{{- $_ := set $out $k $v -}}
{{- end -}}
{{- range $key := $globals -}}
{{- $g := get $root.Values $key -}}
{{- $has := and (hasKey $c $key) (not (kindIs "invalid" (get $c $key))) -}}
{{- if and $has (has $key $nested) (kindIs "map" $g) -}}
{{- $m := deepCopy $g -}}
{{- range $k, $v := (get $c $key) -}}
{{- if not (kindIs "invalid" $v) -}}{{- $_ := set $m $k $v -}}{{- end -}}
{{- end -}}
{{- $_ := set $out $key $m -}}
{{- else if $has -}}
{{- $_ := set $out $key (get $c $key) -}}
{{- else -}}
{{- $_ := set $out $key $g -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The container image of a component; context: dict "root" $ "e" $effective. */}}
{{- define "damfleet.image" -}}
{{- $img := .e.image | default dict -}}
{{- $repo := default (printf "%s-%s" .root.Values.image.repository .e.imageFlavor) $img.repository -}}
{{- $tag := default (default .root.Chart.AppVersion .root.Values.image.tag) $img.tag -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}

{{/* host:port of the inference Service, when that component is enabled. */}}
{{- define "damfleet.inferenceAddress" -}}
{{- $inf := get .Values.components "inference" | default dict -}}
{{- if $inf.enabled -}}
{{- printf "%s:%d" (include "damfleet.componentname" (dict "root" . "component" "inference")) (int $inf.grpcPort) -}}
{{- end -}}
{{- end -}}
