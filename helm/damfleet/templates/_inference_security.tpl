{{/*
Securing the inference service (components.inference.security; damfleet/ai/security.py).
Server = the inference pod; client = the ai_enrich pods (they call it). Each define takes
dict "root" $ "name" <component name> "e" <effective values> and renders nothing for any other
component, or when the inference component is off.

Secret layout (both kubernetes.io/tls, as cert-manager writes them):
  tls.existingSecret   tls.crt/tls.key for the Service name, ca.crt = their CA
                       -> /etc/damfleet/inference-tls (server: all three; clients: ca.crt only)
  tls.clientSecret     tls.crt/tls.key of the clients, ca.crt = the CA client certs are checked
                       against -> /etc/damfleet/inference-client-tls (server: ca.crt, plus the
                       pair for its own probe; clients: the pair)
*/}}

{{/* "server", "client" or "" for this component. */}}
{{- define "damfleet.inferenceSecurity.role" -}}
{{- $inf := get .root.Values.components "inference" | default dict -}}
{{- if $inf.enabled -}}
{{- if eq .name "inference" -}}server{{- else if eq .name "ai_enrich" -}}client{{- end -}}
{{- end -}}
{{- end -}}

{{/* The security block, validated. */}}
{{- define "damfleet.inferenceSecurity.values" -}}
{{- $inf := get .root.Values.components "inference" | default dict -}}
{{- $sec := $inf.security | default dict -}}
{{- $tls := $sec.tls | default dict -}}
{{- if and $tls.requireClientCert (not $tls.existingSecret) -}}
{{- fail "components.inference.security.tls.requireClientCert needs tls.existingSecret (client certificates only exist over TLS)" -}}
{{- end -}}
{{- if and $tls.requireClientCert (not $tls.clientSecret) -}}
{{- fail "components.inference.security.tls.requireClientCert needs tls.clientSecret (a kubernetes.io/tls Secret: the clients' tls.crt/tls.key and ca.crt)" -}}
{{- end -}}
{{- toYaml $sec -}}
{{- end -}}

{{- define "damfleet.inferenceSecurity.env" -}}
{{- $role := include "damfleet.inferenceSecurity.role" . -}}
{{- if $role -}}
{{- $sec := include "damfleet.inferenceSecurity.values" . | fromYaml -}}
{{- $tls := $sec.tls | default dict -}}
{{- $token := $sec.tokenSecret | default dict -}}
{{- $serverName := $tls.serverName | default (include "damfleet.componentname" (dict "root" .root "component" "inference")) -}}
{{- if $tls.existingSecret }}
{{- if eq $role "server" }}
- name: DAMFLEET_AI_INFERENCE_TLS_CERT_PATH
  value: /etc/damfleet/inference-tls/tls.crt
- name: DAMFLEET_AI_INFERENCE_TLS_KEY_PATH
  value: /etc/damfleet/inference-tls/tls.key
{{- if $tls.requireClientCert }}
- name: DAMFLEET_AI_INFERENCE_TLS_CLIENT_CA_PATH
  value: /etc/damfleet/inference-client-tls/ca.crt
{{- end }}
{{- end }}
{{- /* Client side: ai_enrich, and the inference pod's own exec probe (it dials 127.0.0.1, so it
names the certificate's host explicitly). */}}
- name: DAMFLEET_AI_INFERENCE_TLS_CA_PATH
  value: /etc/damfleet/inference-tls/ca.crt
{{- if or (eq $role "server") $tls.serverName }}
- name: DAMFLEET_AI_INFERENCE_TLS_SERVER_NAME
  value: {{ $serverName | quote }}
{{- end }}
{{- if $tls.requireClientCert }}
- name: DAMFLEET_AI_INFERENCE_TLS_CLIENT_CERT_PATH
  value: /etc/damfleet/inference-client-tls/tls.crt
- name: DAMFLEET_AI_INFERENCE_TLS_CLIENT_KEY_PATH
  value: /etc/damfleet/inference-client-tls/tls.key
{{- end }}
{{- end }}
{{- with $token.name }}
- name: DAMFLEET_AI_INFERENCE_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $token.key | default "token" }}
{{- end }}
{{- end -}}
{{- end -}}

{{- define "damfleet.inferenceSecurity.volumeMounts" -}}
{{- $role := include "damfleet.inferenceSecurity.role" . -}}
{{- if $role -}}
{{- $tls := (include "damfleet.inferenceSecurity.values" . | fromYaml).tls | default dict -}}
{{- if $tls.existingSecret }}
- name: inference-tls
  mountPath: /etc/damfleet/inference-tls
  readOnly: true
{{- if $tls.requireClientCert }}
- name: inference-client-tls
  mountPath: /etc/damfleet/inference-client-tls
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}
{{- end -}}

{{- define "damfleet.inferenceSecurity.volumes" -}}
{{- $role := include "damfleet.inferenceSecurity.role" . -}}
{{- if $role -}}
{{- $tls := (include "damfleet.inferenceSecurity.values" . | fromYaml).tls | default dict -}}
{{- if $tls.existingSecret }}
- name: inference-tls
  secret:
    secretName: {{ $tls.existingSecret }}
    defaultMode: 0440
    items:
      {{- if eq $role "server" }}
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
      {{- end }}
      - {key: ca.crt, path: ca.crt}
{{- if $tls.requireClientCert }}
- name: inference-client-tls
  secret:
    secretName: {{ $tls.clientSecret }}
    defaultMode: 0440
    items:
      {{- if eq $role "server" }}
      - {key: ca.crt, path: ca.crt}
      {{- end }}
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
{{- end }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* true when the inference pod must probe itself over TLS (exec) instead of `grpc:`. */}}
{{- define "damfleet.inferenceSecurity.execProbes" -}}
{{- if eq (include "damfleet.inferenceSecurity.role" .) "server" -}}
{{- if ((include "damfleet.inferenceSecurity.values" . | fromYaml).tls | default dict).existingSecret -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* One probe's handler: dict "root" $ "name" .. "e" .. "probe" <probe values> "kind" liveness|readiness|startup. */}}
{{- define "damfleet.inferenceSecurity.probe" -}}
{{- if include "damfleet.inferenceSecurity.execProbes" . }}
exec:
  command:
    - python
    - -m
    - damfleet.ai.probe
    - --timeout
    - {{ max 1 (sub (.probe.timeoutSeconds | default 5 | int) 1) | quote }}
    {{- if eq .kind "liveness" }}
    - --liveness
    {{- end }}
{{- else }}
grpc:
  port: {{ .e.grpcPort | int }}
{{- end }}
{{- toYaml .probe | nindent 0 }}
{{- end -}}
