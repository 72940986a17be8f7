package manifest

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// Good manifests shared by the tests, the schema test and the fuzz seeds.

const goodFull = `# A service with every field in its long form.
apiVersion: qnet/v1
kind: Service
metadata:
  name: web
  network: testnet
  labels:
    app: web
    tier: frontend
    qnet.dev/owner: ops
spec:
  depot:
    exec:
      command: ./bin/web
      args: [--listen, ":8080", --workers, 4]
      workingDir: /srv/web
  replicas: 3
  resources:
    cpu: 250m
    memory: 1.5Gi
  ports:
    - name: http
      port: 8080
      expose: true
    - name: metrics
      port: 9090
      hostPort: 19090
      protocol: tcp
    - name: dns
      port: 53
      protocol: udp
  env:
    LOG_LEVEL: info
    WORKERS: 4
    DEBUG: false
  health:
    liveness:
      http:
        path: /healthz
        port: http
      initialDelay: 2s
      interval: 5s
      timeout: 500ms
      failureThreshold: 5
      successThreshold: 1
    readiness:
      tcp:
        port: 9090
      interval: 2s
  restart:
    policy: on-failure
    backoff: 200ms
    maxBackoff: 1m
  placement:
    strategy: spread
    spreadBy: zone
    constraints:
      - arch == arm64
      - os==linux
      - "label.zone != eu-west-1"
      - label.gpu exists
      - label.tier in (edge, core)
      - label.old not exists
      - name not in (gw-1,gw-2)
      - id != 0123456789abcdef
  flows:
    allow: [db, cache, web]
  ingress:
    rateLimit: 200/s
    burst: 400
    port: http
    maxBodyBytes: 1Mi
    schema: ./order.schema.json
`

const goodMinimal = `apiVersion: qnet/v1
kind: Service
metadata: {name: api}
spec:
  depot: {exec: {command: api}}
`

const goodShort = `apiVersion: qnet/v1
kind: Service
metadata:
  name: db
spec:
  depot:
    exec: /usr/bin/postgres
  replicas: 0
  resources: {cpu: 2, memory: 128974848}
  ports: [{name: pg, port: 5432}]
  health:
    liveness: {exec: [pg_isready, -q], interval: 30s}
    readiness: {tcp: pg}
  placement: {strategy: binpack, constraints: ["label.tier in (edge, core)", "arch != wasm"]}
`

const goodJSON = `{"apiVersion": "qnet/v1", "kind": "Service", "metadata": {"name": "cache"},
 "spec": {"depot": {"exec": {"command": "redis-server", "args": ["--port", "6379"]}},
  "resources": {"cpu": "0.5", "memory": "500M"},
  "ports": [{"name": "redis", "port": 6379}],
  "health": {"liveness": {"tcp": 6379}}}}
`

const goodMulti = `# Two services in one file, sharing a probe through a YAML anchor.
apiVersion: qnet/v1
kind: Service
metadata: {name: front}
spec:
  depot: {exec: {command: front}}
  placement: {spreadBy: zone}
  ports: [{name: http, port: 80}]
  health:
    readiness: &probe {http: /ready, interval: 1s}
    liveness: *probe
---
apiVersion: qnet/v1
kind: Service
metadata: {name: back}
spec:
  depot: {exec: {command: back}}
  replicas: 2
  ports: [{name: http, port: 8080}]
  health:
    readiness: {http: {path: /ready}}
---
`

// Digests used by the good manifests.
var (
	digestA = "sha256:" + strings.Repeat("0123456789abcdef", 4)
	digestB = "sha256:" + strings.Repeat("fedcba9876543210", 4)
)

// goodImage is an image depot in its long form, with a digest written by hand.
var goodImage = `# An OCI image depot with every field.
apiVersion: qnet/v1
kind: Service
metadata: {name: web}
spec:
  depot:
    image:
      ref: registry.local/web:1.2
      digest: ` + digestA + `
      command: [/app/web]
      args: [--port, 8080]
      workingDir: /app
      user: "1000:1000"
      readOnlyRoot: true
  replicas: 2
  ports: [{name: http, port: 8080}]
  env: {MODE: prod}
  health:
    liveness: {http: /healthz}
    readiness: {exec: [curl, -fs, "http://127.0.0.1:8080/ready"]}
`

// goodImageShort holds image depots in the short form: a reference to resolve, and a
// digest that needs no resolving.
var goodImageShort = `apiVersion: qnet/v1
kind: Service
metadata: {name: cache}
spec:
  depot: {image: redis:7}
  ports: [{name: redis, port: 6379}]
  health: {readiness: {tcp: redis}}
---
apiVersion: qnet/v1
kind: Service
metadata: {name: pinned}
spec:
  depot:
    image: {ref: ` + digestB + `, user: 999, readOnlyRoot: false}
`

// goodWasm holds wasm depots in the long and the short form.
var goodWasm = `apiVersion: qnet/v1
kind: Service
metadata: {name: hello}
spec:
  depot:
    wasm:
      module: hello:1
      digest: ` + digestB + `
      args: [serve, --verbose]
  ports: [{name: http, port: 8080}]
---
apiVersion: qnet/v1
kind: Service
metadata: {name: hello-file}
spec:
  depot:
    wasm: ./hello.wasm
`

// goodIngress holds ingresses and flows: defaults, an inline schema written in YAML, a
// rate per minute and one per hour, flows that allow none and flows to itself.
const goodIngress = `apiVersion: qnet/v1
kind: Service
metadata: {name: orders}
spec:
  depot: {image: registry.local/orders:2}
  ports:
    - {name: metrics, port: 9090}
    - {name: dns, port: 53, protocol: udp, expose: true}
    - {name: api, port: 8080, expose: true}
  flows: {allow: []}
  ingress:
    rateLimit: 90/m
    schemaJSON:
      $schema: https://json-schema.org/draft/2020-12/schema
      type: object
      required: [id, qty]
      properties:
        id: {type: string, pattern: "^<[A-Z]+>$"}
        qty: {type: integer, minimum: 1, maximum: 1e3, multipleOf: 1.0}
        note: {type: [string, "null"], maxLength: 0x100, description: café}
      additionalProperties: false
---
apiVersion: qnet/v1
kind: Service
metadata: {name: edge}
spec:
  depot: {exec: edge}
  ports: [{name: web, port: 80, expose: true}]
  flows: {allow: [edge, orders]}
  ingress: {}
---
apiVersion: qnet/v1
kind: Service
metadata: {name: open}
spec:
  depot: {exec: open}
  ports: [{name: web, port: 80, expose: true}]
  ingress: {schemaJSON: true, rateLimit: 5/h, burst: 1}
`

// goodRollout is a manifest with every rollout field.
const goodRollout = `apiVersion: qnet/v1
kind: Service
metadata: {name: web}
spec:
  depot: {exec: web}
  replicas: 8
  rollout: {maxSurge: 25%, maxUnavailable: 1, canary: 2, canaryWindow: 1m, progressDeadline: 10m, autoRevert: true}
`

// goodManifests returns every good manifest of the tests by name, with the example of
// the repository.
func goodManifests(t testing.TB) map[string]string {
	t.Helper()
	hello, err := os.ReadFile("../examples/hello.yaml")
	if err != nil {
		t.Fatalf("read example: %v", err)
	}
	return map[string]string{
		"full.yaml":    goodFull,
		"minimal.yaml": goodMinimal,
		"short.yaml":   goodShort,
		"cache.json":   goodJSON,
		"multi.yaml":   goodMulti,
		"image.yaml":   goodImage,
		"images.yaml":  goodImageShort,
		"wasm.yaml":    goodWasm,
		"ingress.yaml": goodIngress,
		"rollout.yaml": goodRollout,
		"hello.yaml":   string(hello),
		"bom.yaml":     "\xef\xbb\xbf" + goodMinimal,
		"crlf.yaml":    strings.ReplaceAll(goodMinimal, "\n", "\r\n"),
	}
}

// head is the start of a valid manifest whose spec goes on at line 8, indented by two.
const head = `apiVersion: qnet/v1
kind: Service
metadata:
  name: web
spec:
  depot:
    exec: {command: web}
`

// withSpec is head followed by lines of spec, the first at line 8.
func withSpec(lines ...string) string {
	return head + strings.Join(lines, "\n") + "\n"
}

// withMeta is a manifest whose metadata body (indented by two) starts at line 4.
func withMeta(lines ...string) string {
	return "apiVersion: qnet/v1\nkind: Service\nmetadata:\n" + strings.Join(lines, "\n") +
		"\nspec:\n  depot: {exec: {command: web}}\n"
}

// withDepot is a manifest whose depot body (indented by four) starts at line 6.
func withDepot(lines ...string) string {
	return "apiVersion: qnet/v1\nkind: Service\nmetadata: {name: web}\nspec:\n  depot:\n" + strings.Join(lines, "\n") + "\n"
}

// withIngress is head with an exposed tcp port http at line 8, followed by lines of spec
// from line 9.
func withIngress(lines ...string) string {
	return withSpec(append([]string{"  ports: [{name: http, port: 8080, expose: true}]"}, lines...)...)
}

// manyNames is n distinct service names separated by commas: s0, s1, ...
func manyNames(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("s%d", i)
	}
	return strings.Join(names, ", ")
}
