package manifest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// dnsRule is the wording of the DNS label rule in messages.
const dnsRule = "1-63 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'"

// rateWant is how a rate is written, in messages.
const rateWant = "N/s, N/m or N/h with N a whole number from 1 to 1000000000, like 200/s or 30/m"

// noDepot is the error of a manifest without a depot.
const noDepot = "spec.depot: must set exactly one of exec, image or wasm, got none (e.g. exec: ./bin/web, image: registry.local/web:1.2 or wasm: ./hello.wasm)"

// badManifests are manifests with their exact errors; the fuzz targets use them as seeds.
var badManifests = []struct {
	name string
	yaml string
	want []string // every error, in order, exactly as printed
}{
	{
		name: "empty file",
		yaml: "",
		want: []string{"web.yaml:1:1: empty manifest: want a Service manifest with apiVersion: qnet/v1, kind: Service, metadata and spec"},
	},
	{
		name: "only comments and separators",
		yaml: "# nothing here\n---\n---\n",
		want: []string{"web.yaml:1:1: empty manifest: want a Service manifest with apiVersion: qnet/v1, kind: Service, metadata and spec"},
	},
	{
		name: "unclosed flow sequence",
		yaml: "apiVersion: qnet/v1\nkind: [Service\nmetadata: {name: web}\n",
		want: []string{"web.yaml:3:1: invalid YAML: ',' or ']' must be specified"},
	},
	{
		name: "bad indentation",
		yaml: "apiVersion: qnet/v1\n  kind: Service\n",
		want: []string{"web.yaml:1:13: invalid YAML: mapping value is not allowed in this context"},
	},
	{
		name: "duplicate key",
		yaml: "apiVersion: qnet/v1\napiVersion: qnet/v1\n",
		want: []string{`web.yaml:2:1: invalid YAML: mapping key "apiVersion" already defined at [1:1]`},
	},
	{
		name: "document is a list",
		yaml: "- apiVersion: qnet/v1\n",
		want: []string{"web.yaml:1:1: must be a Service manifest: a mapping with apiVersion, kind, metadata and spec, got a list"},
	},
	{
		name: "document is a string",
		yaml: "hello\n",
		want: []string{`web.yaml:1:1: must be a Service manifest: a mapping with apiVersion, kind, metadata and spec, got string "hello"`},
	},
	{
		name: "empty mapping: everything required is missing",
		yaml: "{}\n",
		want: []string{
			"web.yaml:1:1: apiVersion: must be qnet/v1, got nothing",
			"web.yaml:1:1: kind: must be Service, got nothing",
			"web.yaml:1:1: metadata.name: is required: a DNS label (" + dnsRule + ")",
			"web.yaml:1:1: " + noDepot,
		},
	},
	{
		name: "wrong apiVersion and kind",
		yaml: "apiVersion: v1\nkind: Deployment\nmetadata: {name: web}\nspec: {depot: {exec: web}}\n",
		want: []string{
			`web.yaml:1:13: apiVersion: must be qnet/v1, got "v1"`,
			`web.yaml:2:7: kind: must be Service, got "Deployment"`,
		},
	},
	{
		name: "unknown top-level field with a suggestion",
		yaml: "apiVersion: qnet/v1\nkind: Service\nmetadata: {name: web}\nspecs: {depot: {exec: web}}\n",
		want: []string{
			"web.yaml:1:1: " + noDepot,
			"web.yaml:4:1: specs: unknown field (did you mean spec?); valid fields are apiVersion, kind, metadata and spec",
		},
	},
	{
		name: "unknown spec field with a suggestion",
		yaml: withSpec("  replica: 3"),
		want: []string{"web.yaml:8:3: spec.replica: unknown field (did you mean replicas?); valid fields are depot, replicas, resources, ports, env, health, restart, placement, flows, ingress, secrets, configs and rollout"},
	},
	{
		name: "unknown metadata field",
		yaml: withMeta("  name: web", "  namespace: prod"),
		want: []string{"web.yaml:5:3: metadata.namespace: unknown field; valid fields are name, network and labels"},
	},
	{
		name: "name with capitals",
		yaml: withMeta("  name: Web"),
		want: []string{`web.yaml:4:9: metadata.name: must be a DNS label (` + dnsRule + `), got "Web"`},
	},
	{
		name: "name too long, ending with a dash, starting with a digit (three documents)",
		yaml: withMeta("  name: "+strings.Repeat("a", 64)) + "---\n" + withMeta("  name: web-") + "---\n" + withMeta("  name: 1web"),
		want: []string{
			`web.yaml:4:9: metadata.name: must be a DNS label (` + dnsRule + `), got "` + strings.Repeat("a", 64) + `"`,
			`web.yaml:11:9: metadata.name: must be a DNS label (` + dnsRule + `), got "web-"`,
			`web.yaml:18:9: metadata.name: must be a DNS label (` + dnsRule + `), got "1web"`,
		},
	},
	{
		name: "name is a number",
		yaml: withMeta("  name: 123"),
		want: []string{"web.yaml:4:9: metadata.name: must be a DNS label (" + dnsRule + "), got integer 123"},
	},
	{
		name: "missing name",
		yaml: withMeta("  network: testnet"),
		want: []string{"web.yaml:3:1: metadata.name: is required: a DNS label (" + dnsRule + ")"},
	},
	{
		name: "bad network and labels",
		yaml: withMeta("  name: web", "  network: Test_Net", "  labels:", "    -bad: x", "    ok: [1, 2]", "    long: "+strings.Repeat("v", 254), `    tab: "a\tb"`),
		want: []string{
			`web.yaml:5:12: metadata.network: must be empty (any network) or a DNS label (` + dnsRule + `), got "Test_Net"`,
			`web.yaml:7:5: metadata.labels["-bad"]: label key must be 1-63 characters of letters, digits, '.', '_', '-' and '/', starting and ending with a letter or digit, got "-bad"`,
			"web.yaml:8:9: metadata.labels.ok: must be a label value (a string, number or boolean), got a list",
			"web.yaml:9:5: metadata.labels.long: label value must be at most 253 characters, got 254",
			`web.yaml:10:5: metadata.labels.tab: label value must not contain control characters (newlines, tabs, NUL...)`,
		},
	},
	{
		name: "two depot kinds, then all three",
		yaml: withDepot("    exec: ./bin/web", "    image: web:1.2") + "---\n" + withDepot("    {exec: web, image: web, wasm: web.wasm}"),
		want: []string{
			"web.yaml:5:3: spec.depot: must set exactly one of exec, image or wasm, got exec and image",
			"web.yaml:13:3: spec.depot: must set exactly one of exec, image or wasm, got exec and image and wasm",
		},
	},
	{
		name: "null image and wasm count as absent",
		yaml: withDepot("    image:", "    wasm: ~"),
		want: []string{"web.yaml:5:3: " + noDepot},
	},
	{
		name: "unknown depot kind, null image",
		yaml: withDepot("    oci: web:1.2", "    image:"),
		// The unknown field explains the missing depot: it is likely meant as one.
		want: []string{"web.yaml:6:5: spec.depot.oci: unknown field; valid fields are exec, image and wasm"},
	},
	{
		name: "image without ref, with a bad digest",
		yaml: withDepot("    image:", "      digest: sha256:ABC", "      readOnlyRoot: true"),
		want: []string{
			"web.yaml:6:5: spec.depot.image.ref: is required: an image name known to the node's depot store, a registry reference like registry.local/web:1.2, or sha256:<64 hex digits>",
			`web.yaml:7:15: spec.depot.image.digest: must be sha256: followed by 64 lowercase hex digits, got "sha256:ABC"`,
		},
	},
	{
		name: "digests: upper-case hex, another algorithm, short ref digest (three documents)",
		yaml: withDepot("    image: {ref: web, digest: sha256:"+strings.Repeat("AB", 32)+"}") + "---\n" +
			withDepot("    image: {ref: web, digest: \"sha512:"+strings.Repeat("ab", 64)+"\"}") + "---\n" +
			withDepot("    image: sha256:12ab"),
		want: []string{
			`web.yaml:6:31: spec.depot.image.digest: must be sha256: followed by 64 lowercase hex digits, got "sha256:` + strings.Repeat("AB", 32) + `"`,
			`web.yaml:13:31: spec.depot.image.digest: must be sha256: followed by 64 lowercase hex digits, got "sha512:` + strings.Repeat("ab", 64) + `"`,
			`web.yaml:20:12: spec.depot.image.ref: starts with sha256:, so it must be a digest: sha256: followed by 64 lowercase hex digits, got "sha256:12ab"`,
		},
	},
	{
		name: "ref that is a digest and a digest that differs",
		yaml: withDepot("    image:", "      ref: sha256:"+strings.Repeat("a", 64), "      digest: sha256:"+strings.Repeat("b", 64)),
		want: []string{
			"web.yaml:8:15: spec.depot.image.digest: must be the digest that ref names (sha256:" + strings.Repeat("a", 64) + ") or left out, got sha256:" + strings.Repeat("b", 64),
		},
	},
	{
		name: "refs with whitespace, a control character, too long (three documents)",
		yaml: withDepot(`    image: "registry.local/web 1.2"`) + "---\n" + withDepot(`    image: {ref: "web\u0085:1"}`) + "---\n" +
			withDepot("    image: registry.local/"+strings.Repeat("w", 498)),
		want: []string{
			`web.yaml:6:12: spec.depot.image.ref: must not contain whitespace or control characters, got "registry.local/web 1.2"`,
			`web.yaml:13:18: spec.depot.image.ref: must not contain whitespace or control characters, got "web\u0085:1"`,
			"web.yaml:20:12: spec.depot.image.ref: must be at most 512 characters, got 513",
		},
	},
	{
		name: "image of the wrong type, ref of the wrong type (two documents)",
		yaml: withDepot("    image: 5") + "---\n" + withDepot("    image: {ref: [web]}"),
		want: []string{
			"web.yaml:6:12: spec.depot.image: must be an image reference like registry.local/web:1.2 or a mapping {ref, digest, command, args, workingDir, user, readOnlyRoot}, got integer 5",
			"web.yaml:13:18: spec.depot.image.ref: must be an image reference like registry.local/web:1.2 (a string), got a list",
		},
	},
	{
		name: "image: empty command word and argument, relative workingDir, bad readOnlyRoot, unknown field",
		yaml: withDepot("    image:", "      ref: web:1.2", `      command: ["", /app/web]`, `      args: [--port, ""]`,
			"      workingDir: app", "      readOnlyRoot: yes", "      readonlyroot: true", "      entrypoint: [/app/web]"),
		want: []string{
			"web.yaml:8:17: spec.depot.image.command[0]: must be a command word: a non-empty string",
			"web.yaml:9:22: spec.depot.image.args[1]: must be an argument: a non-empty string",
			`web.yaml:10:19: spec.depot.image.workingDir: must be an absolute path (starting with '/', without NUL bytes), like /app, got "app"`,
			`web.yaml:11:21: spec.depot.image.readOnlyRoot: must be true or false, got string "yes"`,
			"web.yaml:12:7: spec.depot.image.readonlyroot: unknown field (did you mean readOnlyRoot?); valid fields are ref, digest, command, args, workingDir, user and readOnlyRoot",
			"web.yaml:13:7: spec.depot.image.entrypoint: unknown field; valid fields are ref, digest, command, args, workingDir, user and readOnlyRoot",
		},
	},
	{
		name: "image users: empty gid, capitals, uid out of range, negative, a list (five documents)",
		yaml: withDepot(`    image: {ref: web, user: "1000:"}`) + "---\n" + withDepot("    image: {ref: web, user: root:Wheel}") + "---\n" +
			withDepot("    image: {ref: web, user: 4294967295}") + "---\n" + withDepot("    image: {ref: web, user: -1}") + "---\n" +
			withDepot("    image: {ref: web, user: [1000]}"),
		want: []string{
			`web.yaml:6:29: spec.depot.image.user: must be uid[:gid], each a number (0-4294967294) or a name from the image (a-z, 0-9, '_' and '-', starting with a letter or '_', at most 32 characters), like 1000:1000 or nobody, got "1000:"`,
			`web.yaml:13:29: spec.depot.image.user: must be uid[:gid], each a number (0-4294967294) or a name from the image (a-z, 0-9, '_' and '-', starting with a letter or '_', at most 32 characters), like 1000:1000 or nobody, got "root:Wheel"`,
			`web.yaml:20:29: spec.depot.image.user: must be uid[:gid], each a number (0-4294967294) or a name from the image (a-z, 0-9, '_' and '-', starting with a letter or '_', at most 32 characters), like 1000:1000 or nobody, got "4294967295"`,
			`web.yaml:27:29: spec.depot.image.user: must be uid[:gid], each a number (0-4294967294) or a name from the image (a-z, 0-9, '_' and '-', starting with a letter or '_', at most 32 characters), like 1000:1000 or nobody, got "-1"`,
			"web.yaml:34:29: spec.depot.image.user: must be uid[:gid] like 1000:1000, or a user name like nobody, got a list",
		},
	},
	{
		name: "wasm without module, with a bad argument and an unknown field",
		yaml: withDepot("    wasm:", `      args: [serve, "", {a: 1}]`, "      env: {A: 1}"),
		want: []string{
			"web.yaml:6:5: spec.depot.wasm.module: is required: a module file path for qnet apply to import, like ./hello.wasm, a name known to the node's depot store, like hello:1, or sha256:<64 hex digits>",
			"web.yaml:7:21: spec.depot.wasm.args[1]: must be an argument: a non-empty string",
			"web.yaml:7:25: spec.depot.wasm.args[2]: must be an argument (a string), got a mapping",
			"web.yaml:8:7: spec.depot.wasm.env: unknown field; valid fields are module, digest and args",
		},
	},
	{
		name: "wasm: a list, a path with a space, a bad digest (three documents)",
		yaml: withDepot("    wasm: [hello.wasm]") + "---\n" + withDepot(`    wasm: "./my module.wasm"`) + "---\n" +
			withDepot("    wasm: {module: hello:1, digest: "+strings.Repeat("a", 64)+"}"),
		want: []string{
			"web.yaml:6:11: spec.depot.wasm: must be a module reference like ./hello.wasm or a mapping {module, digest, args}, got a list",
			`web.yaml:13:11: spec.depot.wasm.module: must not contain whitespace or control characters, got "./my module.wasm"`,
			`web.yaml:20:37: spec.depot.wasm.digest: must be sha256: followed by 64 lowercase hex digits, got "` + strings.Repeat("a", 64) + `"`,
		},
	},
	{
		name: "JSON image depot with an unknown field and a bad user",
		yaml: `{"apiVersion": "qnet/v1", "kind": "Service", "metadata": {"name": "web"},` + "\n" +
			`"spec": {"depot": {"image": {"ref": "web:1.2", "user": "1000:1000:1000", "tag": "1.2"}}}}`,
		want: []string{
			`web.yaml:2:56: spec.depot.image.user: must be uid[:gid], each a number (0-4294967294) or a name from the image (a-z, 0-9, '_' and '-', starting with a letter or '_', at most 32 characters), like 1000:1000 or nobody, got "1000:1000:1000"`,
			"web.yaml:2:74: spec.depot.image.tag: unknown field; valid fields are ref, digest, command, args, workingDir, user and readOnlyRoot",
		},
	},
	{
		name: "no depot",
		yaml: "apiVersion: qnet/v1\nkind: Service\nmetadata: {name: web}\nspec:\n  replicas: 2\n",
		want: []string{"web.yaml:4:1: " + noDepot},
	},
	{
		name: "exec depot without command, with a bad argument",
		yaml: "apiVersion: qnet/v1\nkind: Service\nmetadata: {name: web}\nspec:\n  depot:\n    exec:\n      args: [--port, {x: 1}]\n",
		want: []string{
			"web.yaml:6:5: spec.depot.exec.command: is required: the executable to run, a path or a name looked up in PATH",
			"web.yaml:7:22: spec.depot.exec.args[1]: must be an argument (a string), got a mapping",
		},
	},
	{
		name: "exec depot is a number",
		yaml: "apiVersion: qnet/v1\nkind: Service\nmetadata: {name: web}\nspec:\n  depot: {exec: 5}\n",
		want: []string{"web.yaml:5:17: spec.depot.exec: must be a command like ./bin/web or a mapping {command, args, workingDir}, got integer 5"},
	},
	{
		name: "replicas as a string",
		yaml: withSpec(`  replicas: "three"`),
		want: []string{`web.yaml:8:13: spec.replicas: must be an integer between 0 and 10000, got string "three"`},
	},
	{
		name: "replicas out of range, both ways (two documents)",
		yaml: withSpec("  replicas: -1") + "---\n" + withSpec("  replicas: 10001"),
		want: []string{
			"web.yaml:8:13: spec.replicas: must be between 0 and 10000, got -1",
			"web.yaml:17:13: spec.replicas: must be between 0 and 10000, got 10001",
		},
	},
	{
		name: "replicas as a fraction and as a huge number (two documents)",
		yaml: withSpec("  replicas: 1.5") + "---\n" + withSpec("  replicas: 99999999999999999999"),
		want: []string{
			"web.yaml:8:13: spec.replicas: must be an integer between 0 and 10000, got number 1.5",
			"web.yaml:17:13: spec.replicas: must be an integer between 0 and 10000, got 99999999999999999999, which is out of range",
		},
	},
	{
		name: "cpu: not a quantity, zero, too much, too fine",
		yaml: withSpec("  resources: {cpu: 2 cores}") + "---\n" + withSpec("  resources: {cpu: 0}") + "---\n" +
			withSpec("  resources: {cpu: 2000}") + "---\n" + withSpec("  resources: {cpu: 0.0001}"),
		want: []string{
			`web.yaml:8:20: spec.resources.cpu: must be a CPU quantity: millicores like 250m or cores like 0.5 or 2, got string "2 cores"`,
			"web.yaml:17:20: spec.resources.cpu: must be more than 0 (leave it out for the default 100m), got 0",
			"web.yaml:26:20: spec.resources.cpu: must be more than 0 and at most 1024 cores (like 250m, 0.5 or 2), got 2000",
			"web.yaml:35:20: spec.resources.cpu: must be a CPU quantity: millicores like 250m or cores like 0.5 or 2, got number 0.0001",
		},
	},
	{
		name: "memory: too small, fractional bytes, unknown unit, too large",
		yaml: withSpec("  resources:", "    memory: 1Mi") + "---\n" + withSpec("  resources:", "    memory: 1.1") + "---\n" +
			withSpec("  resources:", "    memory: 64MB") + "---\n" + withSpec("  resources:", "    memory: 17Ti"),
		want: []string{
			"web.yaml:9:13: spec.resources.memory: must be between 4Mi and 16Ti, got 1Mi",
			"web.yaml:19:13: spec.resources.memory: must be a memory quantity: bytes, or a number with K, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (powers of 1024), like 64Mi or 1.5Gi, got number 1.1",
			`web.yaml:29:13: spec.resources.memory: must be a memory quantity: bytes, or a number with K, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (powers of 1024), like 64Mi or 1.5Gi, got string "64MB"`,
			"web.yaml:39:13: spec.resources.memory: must be between 4Mi and 16Ti, got 17Ti",
		},
	},
	{
		name: "memory zero and unknown resource",
		yaml: withSpec("  resources:", "    memory: 0", "    gpu: 1"),
		want: []string{
			"web.yaml:9:13: spec.resources.memory: must be between 4Mi and 16Ti (leave it out for the default 64Mi), got 0",
			"web.yaml:10:5: spec.resources.gpu: unknown field (did you mean cpu?); valid fields are cpu and memory",
		},
	},
	{
		name: "port out of range",
		yaml: withSpec("  ports:", "    - name: http", "      port: 70000"),
		want: []string{"web.yaml:10:13: spec.ports[0].port: must be between 1 and 65535, got 70000"},
	},
	{
		name: "many port errors at once",
		yaml: withSpec(
			"  ports:",
			"    - {name: http, port: 8080}",
			"    - {name: http, port: 8080}",
			`    - {name: HTTP, port: "81", protocol: sctp, hostPort: 70000}`,
			"    - {port: 82}",
			"    - {name: metrics}",
			"    - 9090",
		),
		want: []string{
			`web.yaml:10:14: spec.ports[1].name: must be unique, but "http" is also the name of spec.ports[0]`,
			"web.yaml:10:26: spec.ports[1].port: must be unique per protocol, but 8080/tcp is also used by spec.ports[0]",
			`web.yaml:11:14: spec.ports[2].name: must be a port name (` + dnsRule + `), got "HTTP"`,
			`web.yaml:11:26: spec.ports[2].port: must be a port number between 1 and 65535, got string "81"`,
			`web.yaml:11:42: spec.ports[2].protocol: must be tcp or udp, got "sctp"`,
			"web.yaml:11:58: spec.ports[2].hostPort: must be between 1 and 65535, or 0 (or left out) to let the agent pick a free port, got 70000",
			"web.yaml:12:7: spec.ports[3].name: is required: a port name (" + dnsRule + ")",
			"web.yaml:13:7: spec.ports[4].port: must be between 1 and 65535, got 0",
			"web.yaml:14:7: spec.ports[5]: must be a port mapping like {name: http, port: 8080}, got integer 9090",
		},
	},
	{
		name: "same port number on tcp and udp is fine, hostPort clash is not",
		yaml: withSpec(
			"  ports:",
			"    - {name: dns, port: 53, protocol: udp, hostPort: 5353}",
			"    - {name: dns-tcp, port: 53, hostPort: 5353}",
			"    - {name: other, port: 54, hostPort: 5353, protocol: udp}",
		),
		want: []string{"web.yaml:11:41: spec.ports[2].hostPort: must be unique per protocol, but 5353/udp is also used by spec.ports[0]"},
	},
	{
		name: "ports is a mapping",
		yaml: withSpec("  ports:", "    name: http"),
		want: []string{"web.yaml:9:5: spec.ports: must be a list of ports like [{name: http, port: 8080}], got a mapping"},
	},
	{
		name: "env: bad names and values",
		yaml: withSpec("  env:", "    A=B: x", "    EMPTY:", `    NUL: "a\0b"`, "    LIST: [1]", "    OK: 1"),
		want: []string{
			`web.yaml:9:5: spec.env["A=B"]: environment variable name must be non-empty and contain no '=' or NUL, got "A=B"`,
			`web.yaml:10:5: spec.env.EMPTY: must be an environment variable value (a string, number or boolean), got null; write "" for an empty value`,
			"web.yaml:11:5: spec.env.NUL: environment variable value must not contain NUL bytes",
			"web.yaml:12:11: spec.env.LIST: must be an environment variable value (a string, number or boolean), got a list",
		},
	},
	{
		name: "env is a list",
		yaml: withSpec("  env: [A=1]"),
		want: []string{"web.yaml:8:8: spec.env: must be a mapping of variable names to values, got a list"},
	},
	{
		name: "probe with no check, probe with two checks",
		yaml: withSpec("  health:", "    liveness: {interval: 5s}", "    readiness: {http: /ready, tcp: 80}"),
		want: []string{
			"web.yaml:9:5: spec.health.liveness: must set exactly one of http, tcp or exec, got none (e.g. http: /healthz)",
			"web.yaml:10:5: spec.health.readiness: must set exactly one of http, tcp or exec, got http and tcp",
			"web.yaml:10:23: spec.health.readiness.http.port: is required because spec.ports is empty: a port number between 1 and 65535",
		},
	},
	{
		name: "http check: relative path, unknown port name",
		yaml: withSpec("  ports: [{name: http, port: 80}, {name: admin, port: 81}]", "  health:", "    liveness:", "      http: {path: healthz, port: metrics}"),
		want: []string{
			`web.yaml:11:20: spec.health.liveness.http.path: must be a URL path starting with '/' and without spaces or control characters, like /healthz, got "healthz"`,
			`web.yaml:11:35: spec.health.liveness.http.port: must be the name of a port in spec.ports (http, admin) or a number between 1 and 65535, got "metrics"`,
		},
	},
	{
		name: "http and tcp checks without ports need a port number",
		yaml: withSpec("  health:", "    liveness: {http: /healthz}", "    readiness: {tcp: http}"),
		want: []string{
			"web.yaml:9:22: spec.health.liveness.http.port: is required because spec.ports is empty: a port number between 1 and 65535",
			`web.yaml:10:22: spec.health.readiness.tcp.port: must be a port number between 1 and 65535 because spec.ports is empty, got "http"`,
		},
	},
	{
		name: "check port out of range and of the wrong type",
		yaml: withSpec("  health:", "    liveness: {tcp: 0}", "    readiness: {http: {path: /, port: [1]}}"),
		want: []string{
			"web.yaml:9:21: spec.health.liveness.tcp.port: must be between 1 and 65535, got 0",
			"web.yaml:10:39: spec.health.readiness.http.port: must be a port name from spec.ports or a port number between 1 and 65535, got a list",
		},
	},
	{
		name: "check of the wrong type, empty exec check",
		yaml: withSpec("  health:", "    liveness: {http: 5}", "    readiness: {exec: []}"),
		want: []string{
			"web.yaml:9:22: spec.health.liveness.http: must be a path like /healthz or a mapping {path: /healthz, port: http}, got integer 5",
			"web.yaml:10:23: spec.health.readiness.exec.command: must be a non-empty list: the command to run and its arguments, like [pg_isready, -q]",
		},
	},
	{
		name: "probe timings out of bounds",
		yaml: withSpec("  health:", "    liveness:", "      exec: [true]", "      interval: 50ms", "      initialDelay: -1s",
			"    readiness:", "      exec: {command: [check]}", "      interval: 2s", "      timeout: 3s", "      successThreshold: 101"),
		want: []string{
			"web.yaml:11:17: spec.health.liveness.interval: must be between 100ms and 1h, got 50ms",
			"web.yaml:12:21: spec.health.liveness.initialDelay: must be between 0s and 1h, got -1s",
			"web.yaml:16:16: spec.health.readiness.timeout: must be more than 0 and at most the interval (2s), got 3s",
			"web.yaml:17:25: spec.health.readiness.successThreshold: must be between 1 and 100, got 101",
		},
	},
	{
		name: "explicit zero durations and thresholds, duration without unit",
		yaml: withSpec("  health:", "    liveness:", "      exec: [true]", "      interval: 0s", "      timeout: 5",
			"      failureThreshold: 0"),
		want: []string{
			"web.yaml:11:17: spec.health.liveness.interval: must be more than 0 (leave it out for the default 10s), got 0s",
			"web.yaml:12:16: spec.health.liveness.timeout: must be a duration like 5s, 250ms or 1m30s, got integer 5",
			"web.yaml:13:25: spec.health.liveness.failureThreshold: must be between 1 and 100 (leave it out for the default 3), got 0",
		},
	},
	{
		name: "unknown probe field and unknown health field",
		yaml: withSpec("  health:", "    liveness: {exec: [true], periodSeconds: 5}", "    startup: {exec: [true]}"),
		want: []string{
			"web.yaml:9:30: spec.health.liveness.periodSeconds: unknown field; valid fields are http, tcp, exec, initialDelay, interval, timeout, failureThreshold and successThreshold",
			"web.yaml:10:5: spec.health.startup: unknown field; valid fields are liveness and readiness",
		},
	},
	{
		name: "restart: bad policy, zero backoff, maxBackoff below backoff",
		yaml: withSpec("  restart: {policy: sometimes, backoff: 0s}") + "---\n" + withSpec("  restart: {backoff: 1s, maxBackoff: 500ms}"),
		want: []string{
			`web.yaml:8:21: spec.restart.policy: must be always, on-failure or never, got "sometimes"`,
			"web.yaml:8:41: spec.restart.backoff: must be more than 0 (leave it out for the default 100ms), got 0s",
			"web.yaml:17:38: spec.restart.maxBackoff: must be at least backoff (1s) and at most 1h, got 500ms",
		},
	},
	{
		name: "restart written as a policy",
		yaml: withSpec("  restart: never"),
		want: []string{`web.yaml:8:12: spec.restart: must be a mapping with policy, backoff and maxBackoff, got string "never"`},
	},
	{
		name: "planned field not supported yet",
		yaml: withSpec("  mpi: {ranks: 8}"),
		want: []string{"web.yaml:8:3: spec.mpi: is not supported yet in qnet/v1; valid fields are depot, replicas, resources, ports, env, health, restart, placement, flows, ingress, secrets, configs and rollout"},
	},
	{
		name: "placement: unknown strategy, bad spreadBy",
		yaml: withSpec(`  placement: {strategy: pack, spreadBy: "Zone!"}`),
		want: []string{
			`web.yaml:8:25: spec.placement.strategy: must be spread or binpack, got "pack"`,
			`web.yaml:8:41: spec.placement.spreadBy: must be node or a node label key such as zone (1-63 characters of letters, digits, '.', '_', '-' and '/', starting and ending with a letter or digit), got "Zone!"`,
		},
	},
	{
		name: "placement: spreadBy with binpack, unknown field, near not supported yet",
		yaml: withSpec("  placement:", "    strategy: binpack", "    spreadBy: zone", "    constraint: [arch == arm64]", "    near: [dataset-x]"),
		want: []string{
			`web.yaml:10:15: spec.placement.spreadBy: applies to strategy spread only; leave it out with binpack, got "zone"`,
			`web.yaml:11:5: spec.placement.constraint: unknown field (did you mean constraints?); valid fields are strategy, spreadBy and constraints`,
			`web.yaml:12:5: spec.placement.near: is not supported yet in qnet/v1; valid fields are strategy, spreadBy and constraints`,
		},
	},
	{
		name: "constraints: unknown attribute, unknown operators, missing and extra values",
		yaml: withSpec("  placement:", "    constraints:",
			"      - zone == eu-west-1",
			"      - Arch == arm64",
			"      - cpu > 2",
			"      - arch = arm64",
			"      - label.tier notin (edge)",
			"      - arch ==",
			"      - arch == arm64 amd64",
			"      - os != linux darwin",
			"      - label.gpu exists yes",
			"      - == arm64",
			"      - arch",
			`      - ""`,
		),
		want: []string{
			`web.yaml:10:9: spec.placement.constraints[0]: unknown attribute "zone" in "zone == eu-west-1" (did you mean label.zone?); want arch, os, name, id or label.<key>`,
			`web.yaml:11:9: spec.placement.constraints[1]: unknown attribute "Arch" in "Arch == arm64" (did you mean arch?); want arch, os, name, id or label.<key>`,
			`web.yaml:12:9: spec.placement.constraints[2]: unknown attribute "cpu" in "cpu > 2" (did you mean label.cpu?); want arch, os, name, id or label.<key>`,
			`web.yaml:13:9: spec.placement.constraints[3]: unknown operator "=" in "arch = arm64" (did you mean ==?); want ==, !=, in (a, b), not in (a, b), exists or not exists`,
			`web.yaml:14:9: spec.placement.constraints[4]: unknown operator "notin" in "label.tier notin (edge)" (did you mean not in?); want ==, !=, in (a, b), not in (a, b), exists or not exists`,
			`web.yaml:15:9: spec.placement.constraints[5]: "arch ==" needs one value after ==, like "arch == arm64"`,
			`web.yaml:16:9: spec.placement.constraints[6]: "arch == arm64 amd64" has more than one value after ==; write "arch in (arm64, amd64)" to name several`,
			`web.yaml:17:9: spec.placement.constraints[7]: "os != linux darwin" has more than one value after !=; write "os not in (linux, darwin)" to name several`,
			`web.yaml:18:9: spec.placement.constraints[8]: unexpected "yes" after exists in "label.gpu exists yes"; exists takes no value`,
			`web.yaml:19:9: spec.placement.constraints[9]: "== arm64" has no attribute before ==; want <attribute> <operator> [value], like "arch == arm64"`,
			`web.yaml:20:9: spec.placement.constraints[10]: "arch" has no operator; want ==, !=, in (a, b), not in (a, b), exists or not exists after the attribute, like "arch == arm64"`,
			`web.yaml:21:9: spec.placement.constraints[11]: must be a constraint <attribute> <operator> [value], like "arch == arm64", got ""`,
		},
	},
	{
		name: "constraints: lists",
		yaml: withSpec("  placement:",
			"    constraints: [label.tier in (edge, core), label.zone in eu, name in (), \"name in (a,,b)\", \"label.x not in (a b)\", \"id in (a) b\"]"),
		want: []string{
			`web.yaml:9:19: spec.placement.constraints[0]: "label.tier in (edge" has no closing ")"; in a flow list [...] quote the constraint, since commas there separate the list's entries`,
			`web.yaml:9:40: spec.placement.constraints[1]: unknown attribute "core" in "core)" (did you mean label.core?); want arch, os, name, id or label.<key>`,
			`web.yaml:9:47: spec.placement.constraints[2]: "label.zone in eu" needs a list in parentheses after in, like "label.zone in (a, b)"`,
			`web.yaml:9:65: spec.placement.constraints[3]: "name in ()" has an empty list; want at least one value, like (gateway-1, gateway-2)`,
			`web.yaml:9:77: spec.placement.constraints[4]: "name in (a,,b)" has an empty value in its list; want values separated by commas, like (gateway-1, gateway-2)`,
			`web.yaml:9:95: spec.placement.constraints[5]: "label.x not in (a b)" has a list entry with a space in it, "a b"; separate values with commas, like (a, b)`,
			`web.yaml:9:119: spec.placement.constraints[6]: unexpected "b" after the list in "id in (a) b"`,
		},
	},
	{
		name: "constraints: exists on an attribute every node has, unknown arch and os, bad label keys",
		yaml: withSpec("  placement:", "    constraints:",
			"      - arch exists",
			"      - arch in (arm64, x86_64)",
			"      - os == macos",
			"      - os == plan10",
			"      - label. exists",
			"      - label.-x == y",
			"      - not exists",
		),
		want: []string{
			`web.yaml:10:9: spec.placement.constraints[0]: "arch exists" tests an attribute every node has; exists applies to labels, like "label.gpu exists"`,
			`web.yaml:11:9: spec.placement.constraints[1]: unknown architecture "x86_64" in "arch in (arm64, x86_64)" (did you mean amd64?); want a Go architecture name: 386, amd64, arm, arm64, loong64, mips, mips64, mips64le, mipsle, ppc64, ppc64le, riscv64, s390x or wasm`,
			`web.yaml:12:9: spec.placement.constraints[2]: unknown operating system "macos" in "os == macos" (did you mean darwin?); want a Go operating system name: aix, android, darwin, dragonfly, freebsd, illumos, ios, js, linux, netbsd, openbsd, plan9, solaris, wasip1 or windows`,
			`web.yaml:13:9: spec.placement.constraints[3]: unknown operating system "plan10" in "os == plan10"; want a Go operating system name: aix, android, darwin, dragonfly, freebsd, illumos, ios, js, linux, netbsd, openbsd, plan9, solaris, wasip1 or windows`,
			`web.yaml:14:9: spec.placement.constraints[4]: "label. exists" names no label key; want label.<key>, like label.zone`,
			`web.yaml:15:9: spec.placement.constraints[5]: label key "-x" in "label.-x == y" must be 1-63 characters of letters, digits, '.', '_', '-' and '/', starting and ending with a letter or digit`,
			`web.yaml:16:9: spec.placement.constraints[6]: "not exists" has no attribute before not; want <attribute> <operator> [value], like "label.gpu exists"`,
		},
	},
	{
		name: "constraints: not strings, null, too long a list",
		yaml: withSpec("  placement:", "    constraints:",
			"      - 5",
			"      - {arch: arm64}",
			"      -",
			"      - label.n in ("+strings.TrimSuffix(strings.Repeat("v, ", 65), ", ")+")",
		),
		want: []string{
			`web.yaml:10:9: spec.placement.constraints[0]: must be a constraint like "arch == arm64" (a string), got integer 5`,
			`web.yaml:11:9: spec.placement.constraints[1]: must be a constraint like "arch == arm64" (a string), got a mapping`,
			`web.yaml:12:8: spec.placement.constraints[2]: must be a constraint like "arch == arm64" (a string), got null`,
			`web.yaml:13:9: spec.placement.constraints[3]: "label.n in (v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, ..." lists 65 values; at most 64 are allowed`,
		},
	},
	{
		name: "constraints: too many, and not a list",
		yaml: withSpec("  placement:", "    constraints: ["+strings.TrimSuffix(strings.Repeat(`"label.a exists", `, 33), ", ")+"]") +
			"---\n" + withSpec("  placement: {constraints: arch == arm64}"),
		want: []string{
			`web.yaml:9:5: spec.placement.constraints: must hold at most 32 constraints, got 33`,
			`web.yaml:18:28: spec.placement.constraints: must be a list of constraints like ["arch == arm64", "label.zone != eu-west-1"], got string "arch == arm64"`,
		},
	},
	{
		name: "ingress: rates not N/s, N/m or N/h, zero, too large (six documents)",
		yaml: withIngress("  ingress: {rateLimit: 200}") + "---\n" + withIngress("  ingress: {rateLimit: 200/sec}") + "---\n" +
			withIngress("  ingress: {rateLimit: 0/s}") + "---\n" + withIngress("  ingress: {rateLimit: 2000000000/s}") + "---\n" +
			withIngress("  ingress: {rateLimit: -5/m}") + "---\n" + withIngress("  ingress: {rateLimit: [200/s]}"),
		want: []string{
			"web.yaml:9:24: spec.ingress.rateLimit: must be a rate " + rateWant + ", got integer 200",
			`web.yaml:19:24: spec.ingress.rateLimit: must be a rate ` + rateWant + `, got string "200/sec"`,
			"web.yaml:29:24: spec.ingress.rateLimit: must be more than 0 (leave rateLimit out for no limit), got 0/s",
			`web.yaml:39:24: spec.ingress.rateLimit: must be a rate ` + rateWant + `, got string "2000000000/s"`,
			`web.yaml:49:24: spec.ingress.rateLimit: must be a rate ` + rateWant + `, got string "-5/m"`,
			"web.yaml:59:24: spec.ingress.rateLimit: must be a rate " + rateWant + ", got a list",
		},
	},
	{
		name: "ingress: burst zero, negative, too large, a string, without rateLimit (five documents)",
		yaml: withIngress("  ingress: {rateLimit: 10/s, burst: 0}") + "---\n" + withIngress("  ingress: {rateLimit: 10/s, burst: -1}") + "---\n" +
			withIngress("  ingress: {rateLimit: 10/s, burst: 1000000001}") + "---\n" + withIngress(`  ingress: {rateLimit: 10/s, burst: "20"}`) + "---\n" +
			withIngress("  ingress: {burst: 20}"),
		want: []string{
			"web.yaml:9:37: spec.ingress.burst: must be between 1 and 1000000000 (leave it out for the rate per second), got 0",
			"web.yaml:19:37: spec.ingress.burst: must be between 1 and 1000000000 (leave it out for the rate per second, here 10), got -1",
			"web.yaml:29:37: spec.ingress.burst: must be between 1 and 1000000000 (leave it out for the rate per second, here 10), got 1000000001",
			`web.yaml:39:37: spec.ingress.burst: must be a whole number of requests between 1 and 1000000000, got string "20"`,
			"web.yaml:49:20: spec.ingress.burst: applies only with a rateLimit; set rateLimit, like 200/s, or leave burst out, got 20",
		},
	},
	{
		name: "ingress: port not exposed, unknown port, udp port, port as a number",
		yaml: withSpec("  ports:", "    - {name: http, port: 8080, expose: true}", "    - {name: admin, port: 9000}",
			"    - {name: dns, port: 53, protocol: udp, expose: true}", "  ingress: {port: admin}") + "---\n" +
			withIngress("  ingress: {port: metrics}") + "---\n" +
			withSpec("  ports: [{name: dns, port: 53, protocol: udp, expose: true}, {name: http, port: 80, expose: true}]", "  ingress: {port: dns}") + "---\n" +
			withIngress("  ingress: {port: 8080}"),
		want: []string{
			`web.yaml:12:19: spec.ingress.port: names port "admin", which is not exposed: set expose: true on spec.ports[1], or name an exposed port (http)`,
			`web.yaml:22:19: spec.ingress.port: must be the name of an exposed tcp port in spec.ports (http), got "metrics"`,
			`web.yaml:32:19: spec.ingress.port: names port "dns", which is udp; ingress serves HTTP and TCP only, so name an exposed tcp port`,
			"web.yaml:42:19: spec.ingress.port: must be the name of an exposed tcp port in spec.ports (a string), got integer 8080",
		},
	},
	{
		name: "ingress without an exposed tcp port (three documents)",
		yaml: withSpec("  ingress: {rateLimit: 200/s}") + "---\n" +
			withSpec("  ports: [{name: http, port: 80}, {name: dns, port: 53, protocol: udp, expose: true}]", "  ingress:", "    rateLimit: 200/s") + "---\n" +
			withSpec("  ports: [{name: http, port: 80}]", "  ingress: {port: http}"),
		want: []string{
			"web.yaml:8:3: spec.ingress.port: needs an exposed tcp port, but spec.ports has none: set expose: true on the port ingress serves, like {name: http, port: 8080, expose: true}",
			"web.yaml:18:3: spec.ingress.port: needs an exposed tcp port, but spec.ports has none: set expose: true on the port ingress serves, like {name: http, port: 8080, expose: true}",
			`web.yaml:29:19: spec.ingress.port: names port "http", which is not exposed: set expose: true on spec.ports[0]`,
		},
	},
	{
		name: "flows: names that are not DNS labels, not strings, null, and a duplicate",
		yaml: withSpec("  flows:", "    allow:", "      - db", "      - Cache", "      - 5", "      -", `      - ""`, "      - db", "      - web"),
		want: []string{
			`web.yaml:11:9: spec.flows.allow[1]: must be a service name (` + dnsRule + `), got "Cache"`,
			"web.yaml:12:9: spec.flows.allow[2]: must be a service name (" + dnsRule + "), got integer 5",
			"web.yaml:13:8: spec.flows.allow[3]: must be a service name (" + dnsRule + "), got null",
			`web.yaml:14:9: spec.flows.allow[4]: must be a service name (` + dnsRule + `), got ""`,
			`web.yaml:15:9: spec.flows.allow[5]: must name each service once, but "db" is also spec.flows.allow[0]`,
		},
	},
	{
		name: "flows: a list, allow a string, too many names (three documents)",
		yaml: withSpec("  flows: [db, cache]") + "---\n" + withSpec("  flows: {allow: db}") + "---\n" +
			withSpec("  flows: {allow: ["+manyNames(257)+"]}"),
		want: []string{
			"web.yaml:8:10: spec.flows: must be a mapping {allow: [service names]}, like {allow: [db, cache]}, got a list",
			`web.yaml:17:18: spec.flows.allow: must be a list of service names, like [db, cache]; [] allows none, got string "db"`,
			"web.yaml:26:11: spec.flows.allow: must name at most 256 services, got 257",
		},
	},
	{
		name: "unknown fields under flows and ingress",
		yaml: withIngress("  flows: {allow: [db], deny: [cache]}", "  ingress:", "    rateLimits: 200/s", "    schemaFile: ./a.json", "    tls: true"),
		want: []string{
			"web.yaml:9:24: spec.flows.deny: unknown field; the only field here is allow",
			"web.yaml:11:5: spec.ingress.rateLimits: unknown field (did you mean rateLimit?); valid fields are rateLimit, burst, port, maxBodyBytes, schema and schemaJSON",
			"web.yaml:12:5: spec.ingress.schemaFile: unknown field; valid fields are rateLimit, burst, port, maxBodyBytes, schema and schemaJSON",
			"web.yaml:13:5: spec.ingress.tls: unknown field; valid fields are rateLimit, burst, port, maxBodyBytes, schema and schemaJSON",
		},
	},
	{
		name: "ingress: schema not a string, a URL, with a control character (three documents)",
		yaml: withIngress("  ingress:", "    schema: {type: object}") + "---\n" +
			withIngress("  ingress: {schema: https://example.com/order.json}") + "---\n" + withIngress(`  ingress: {schema: "a\tb.json"}`),
		want: []string{
			"web.yaml:10:13: spec.ingress.schema: must be the path of a JSON Schema file relative to the manifest, like ./order.schema.json (a string), got a mapping",
			`web.yaml:20:21: spec.ingress.schema: must be a file path relative to the manifest, like ./order.schema.json; URLs are not fetched, got "https://example.com/order.json"`,
			`web.yaml:30:21: spec.ingress.schema: must be a file path without control characters (newlines, tabs, NUL...), got "a\tb.json"`,
		},
	},
	{
		name: "ingress: maxBodyBytes not a size, zero, too large, too large with a schema (four documents)",
		yaml: withIngress("  ingress: {maxBodyBytes: 1MB}") + "---\n" + withIngress("  ingress: {maxBodyBytes: 0}") + "---\n" +
			withIngress("  ingress: {maxBodyBytes: 17Gi}") + "---\n" + withIngress("  ingress: {maxBodyBytes: 100Mi, schemaJSON: {type: object}}"),
		want: []string{
			`web.yaml:9:27: spec.ingress.maxBodyBytes: must be a size: bytes, or a number with K, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (powers of 1024), like 1Mi or 512Ki, got string "1MB"`,
			"web.yaml:19:27: spec.ingress.maxBodyBytes: must be between 1 and 16Gi (leave it out for the default 1Mi), got 0",
			"web.yaml:29:27: spec.ingress.maxBodyBytes: must be between 1 and 16Gi, like 1Mi or 512Ki, got 17Gi",
			"web.yaml:39:27: spec.ingress.maxBodyBytes: must be at most 64Mi with a schema, since the ingress reads a whole body to check it, got 100Mi",
		},
	},
	{
		name: "ingress: schemaJSON a list, a string, not JSON (three documents)",
		yaml: withIngress("  ingress: {schemaJSON: [{type: object}]}") + "---\n" + withIngress(`  ingress: {schemaJSON: "{\"type\": \"object\"}"}`) + "---\n" +
			withIngress("  ingress:", "    schemaJSON:", "      properties: {n: {maximum: .inf}}"),
		want: []string{
			"web.yaml:9:13: spec.ingress.schemaJSON: must be a JSON Schema document: a JSON object or true or false, got a list",
			"web.yaml:19:25: spec.ingress.schemaJSON: must be a JSON Schema document: a JSON object or true or false, got a string",
			"web.yaml:31:33: spec.ingress.schemaJSON: must be JSON: objects, lists, strings, numbers, true, false and null, got number .inf",
		},
	},
	{
		name: "ingress: schemaJSON nests too deep, expands too much through aliases (two documents)",
		yaml: withIngress("  ingress: {schemaJSON: "+strings.Repeat("[", 70)+strings.Repeat("]", 70)+"}") + "---\n" +
			withIngress("  ingress:", "    schemaJSON:", "      a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]",
				"      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]", "      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]",
				"      d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]"),
		want: []string{
			"web.yaml:9:89: spec.ingress.schemaJSON: nests deeper than 64 levels; a JSON Schema needs far fewer",
			"web.yaml:20:5: spec.ingress.schemaJSON: expands to more than 10000 values through aliases; write the schema out",
		},
	},
	{
		name: "flows and ingress of the wrong type",
		yaml: withIngress("  flows: true", "  ingress: [rateLimit: 200/s]"),
		want: []string{
			"web.yaml:9:10: spec.flows: must be a mapping {allow: [service names]}, like {allow: [db, cache]}, got boolean true",
			"web.yaml:10:12: spec.ingress: must be a mapping with rateLimit, burst, port, maxBodyBytes, schema and schemaJSON, like {rateLimit: 200/s, schema: ./order.schema.json}, got a list",
		},
	},
	{
		name: "alias to no anchor, merge key",
		yaml: withSpec("  ports: *ports", "  health:", "    <<: {liveness: {exec: [true]}}"),
		want: []string{
			"web.yaml:8:10: spec.ports: alias *ports refers to no anchor; define it first with &ports",
			"web.yaml:10:5: spec.health.<<: merge keys (<<) are not supported; write the fields out",
		},
	},
	{
		name: "duplicate service names in one file",
		yaml: withMeta("  name: web") + "---\n" + withMeta("  name: web"),
		want: []string{`web.yaml:11:9: metadata.name: must be unique, but service "web" is also defined at web.yaml:4:9`},
	},
	{
		name: "a good document does not hide a bad one",
		yaml: goodMinimal + "---\n" + withSpec("  replicas: many"),
		want: []string{`web.yaml:14:13: spec.replicas: must be an integer between 0 and 10000, got string "many"`},
	},
	{
		name: "JSON with an unknown field and a type error",
		yaml: `{"apiVersion": "qnet/v1", "kind": "Service", "metadata": {"name": "web", "uid": 1},` + "\n" +
			`"spec": {"depot": {"exec": {"command": "web"}}, "replicas": "2"}}`,
		want: []string{
			"web.yaml:1:74: metadata.uid: unknown field; valid fields are name, network and labels",
			`web.yaml:2:61: spec.replicas: must be an integer between 0 and 10000, got string "2"`,
		},
	},
	{
		name: "too many tokens",
		yaml: strings.Repeat("- ", maxTokens+1),
		want: []string{"web.yaml:1:1: manifest has more than 10000 YAML tokens (keys, values and punctuation); a Service manifest is far smaller, so split the file"},
	},
	{
		name: "too large",
		yaml: goodMinimal + "# " + strings.Repeat("x", MaxManifestSize) + "\n",
		want: []string{fmt.Sprintf("web.yaml:1:1: manifest is %d bytes; it must be at most 1048576 bytes (1 MiB)", len(goodMinimal)+MaxManifestSize+3)},
	},
}

func TestDecodeBad(t *testing.T) {
	t.Parallel()
	tests := badManifests
	if len(tests) < 35 {
		t.Fatalf("only %d bad manifests; keep at least 35", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svcs, err := Decode("web.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Decode succeeded with %d services; want errors:\n%s", len(svcs), strings.Join(tt.want, "\n"))
			}
			if svcs != nil {
				t.Errorf("Decode returned services along with errors")
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want ErrorList: %v", err, err)
			}
			var got []string
			for _, e := range list {
				got = append(got, e.Error())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if err.Error() != strings.Join(tt.want, "\n") {
				t.Errorf("Error() = %q, want the errors joined by newlines", err.Error())
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe != list[0] {
				t.Errorf("errors.As does not find the first *FieldError")
			}
		})
	}
}
