package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema()))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("service-v1.json", doc); err != nil {
		t.Fatalf("AddResource: %v", err)
	}
	// Compile checks the schema against the draft 2020-12 meta-schema.
	sch, err := c.Compile("service-v1.json")
	if err != nil {
		t.Fatalf("schema does not compile: %v", err)
	}
	return sch
}

// yamlDocs turns each document of a YAML file into the JSON values a schema validator
// (and an editor) sees.
func yamlDocs(t *testing.T, text string) []any {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(strings.TrimPrefix(text, "\ufeff")))
	var out []any
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("yaml: %v", err)
		}
		if v == nil {
			continue
		}
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json: %v", err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("json: %v", err)
		}
		out = append(out, inst)
	}
}

func TestSchemaAcceptsGoodManifests(t *testing.T) {
	t.Parallel()
	sch := compileSchema(t)
	for name, text := range goodManifests(t) {
		docs := yamlDocs(t, text)
		if len(docs) == 0 {
			t.Fatalf("%s: no documents", name)
		}
		for i, doc := range docs {
			if err := sch.Validate(doc); err != nil {
				t.Errorf("%s document %d does not match the schema: %v", name, i, err)
			}
		}
		// The canonical JSON form that goes on the ledger matches it too.
		svcs, err := Decode(name, []byte(text))
		if err != nil {
			t.Fatalf("Decode(%s): %v", name, err)
		}
		for _, s := range svcs {
			data, _ := json.Marshal(s)
			inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(data))
			if err := sch.Validate(inst); err != nil {
				t.Errorf("%s: JSON form %s does not match the schema: %v", name, data, err)
			}
		}
	}
}

// Manifests that are wrong in structure: both Decode and the schema refuse them.
func TestSchemaAndDecodeRefuseTheSame(t *testing.T) {
	t.Parallel()
	sch := compileSchema(t)
	bad := map[string]string{
		"unknown top field":       withSpec() + "extra: 1\n",
		"unknown spec field":      withSpec("  replica: 1"),
		"unknown metadata field":  withMeta("  name: web", "  uid: x"),
		"unknown depot kind":      strings.Replace(head, "exec: {command: web}", "oci: web:1.2", 1),
		"two depot kinds":         withDepot("    exec: web", "    wasm: ./web.wasm"),
		"unknown image field":     withDepot("    image: {ref: web, entrypoint: [x]}"),
		"unknown wasm field":      withDepot("    wasm: {module: web, env: {}}"),
		"image without ref":       withDepot("    image: {digest: " + digestA + "}"),
		"wasm without module":     withDepot("    wasm: {args: [x]}"),
		"image ref with a space":  withDepot(`    image: "web 1.2"`),
		"wasm module too long":    withDepot("    wasm: " + strings.Repeat("m", 513)),
		"short digest ref":        withDepot("    image: sha256:abc"),
		"upper-case digest":       withDepot("    wasm: {module: x, digest: " + strings.ToUpper(digestA) + "}"),
		"digest of another kind":  withDepot(`    image: {ref: x, digest: "md5:0123456789abcdef0123456789abcdef"}`),
		"empty image argument":    withDepot(`    image: {ref: x, args: [""]}`),
		"relative workingDir":     withDepot("    image: {ref: x, workingDir: app}"),
		"bad user":                withDepot("    image: {ref: x, user: Root}"),
		"negative uid":            withDepot("    image: {ref: x, user: -1}"),
		"readOnlyRoot a string":   withDepot(`    image: {ref: x, readOnlyRoot: "yes"}`),
		"image a number":          withDepot("    image: 5"),
		"ref with a no-break sp":  withDepot(`    image: "web\u00a0:1"`),
		"ref with a C1 control":   withDepot(`    wasm: {module: "web\u0085"}`),
		"unknown exec field":      strings.Replace(head, "exec: {command: web}", "exec: {command: web, user: root}", 1),
		"unknown resource":        withSpec("  resources: {gpu: 1}"),
		"unknown port field":      withSpec("  ports: [{name: http, port: 80, targetPort: 8080}]"),
		"unknown health field":    withSpec("  health: {startup: {http: /}}"),
		"unknown probe field":     withSpec("  health: {liveness: {http: /, period: 5s}}"),
		"unknown http field":      withSpec("  health: {liveness: {http: {path: /, scheme: https}}}"),
		"unknown tcp field":       withSpec("  health: {liveness: {tcp: {port: 80, host: x}}}"),
		"unknown exec check":      withSpec("  health: {liveness: {exec: {command: [x], shell: true}}}"),
		"unknown restart field":   withSpec("  restart: {limit: 3}"),
		"missing apiVersion":      strings.Replace(head, "apiVersion: qnet/v1\n", "", 1),
		"missing name":            withMeta("  network: x"),
		"missing depot":           "apiVersion: qnet/v1\nkind: Service\nmetadata: {name: web}\nspec: {replicas: 1}\n",
		"missing port number":     withSpec("  ports: [{name: http}]"),
		"missing http path":       withSpec("  health: {liveness: {http: {port: 80}}}"),
		"two checks":              withSpec("  health: {liveness: {http: /, tcp: 80}}"),
		"no check":                withSpec("  health: {liveness: {interval: 5s}}"),
		"replicas as a string":    withSpec(`  replicas: "3"`),
		"bad protocol":            withSpec("  ports: [{name: http, port: 80, protocol: sctp}]"),
		"bad policy":              withSpec("  restart: {policy: sometimes}"),
		"bad cpu":                 withSpec("  resources: {cpu: 2 cores}"),
		"bad memory":              withSpec("  resources: {memory: 64MB}"),
		"bad duration":            withSpec("  health: {liveness: {http: /, interval: 5}}"),
		"bad api version":         strings.Replace(head, "qnet/v1", "qnet/v2", 1),
		"bad name":                withMeta("  name: Web"),
		"port out of range":       withSpec("  ports: [{name: http, port: 70000}]"),
		"relative http path":      withSpec("  ports: [{name: http, port: 80}]", "  health: {liveness: {http: healthz}}"),
		"bad strategy":            withSpec("  placement: {strategy: pack}"),
		"bad spreadBy":            withSpec(`  placement: {spreadBy: "Zone!"}`),
		"unknown placement field": withSpec("  placement: {near: [x]}"),
		"constraints not a list":  withSpec("  placement: {constraints: arch == arm64}"),
		"constraint not a string": withSpec("  placement: {constraints: [5]}"),
		"unknown attribute":       withSpec("  placement: {constraints: [zone == a]}"),
		"unknown operator":        withSpec("  placement: {constraints: [arch = arm64]}"),
		"two values":              withSpec("  placement: {constraints: [arch == arm64 amd64]}"),
		"exists on arch":          withSpec("  placement: {constraints: [arch exists]}"),
		"unclosed list":           withSpec(`  placement: {constraints: ["label.a in (x"]}`),
		"empty list":              withSpec(`  placement: {constraints: ["label.a in ()"]}`),
		"unknown ingress field":   withIngress("  ingress: {tls: true}"),
		"unknown flows field":     withSpec("  flows: {deny: [db]}"),
		"flows a list":            withSpec("  flows: [db]"),
		"flows name not DNS":      withSpec("  flows: {allow: [Db]}"),
		"flows name twice":        withSpec("  flows: {allow: [db, db]}"),
		"too many flows":          withSpec("  flows: {allow: [" + manyNames(257) + "]}"),
		"rate without unit":       withIngress("  ingress: {rateLimit: 200}"),
		"rate with a long unit":   withIngress("  ingress: {rateLimit: 200/sec}"),
		"rate of zero":            withIngress("  ingress: {rateLimit: 0/s}"),
		"burst of zero":           withIngress("  ingress: {rateLimit: 1/s, burst: 0}"),
		"burst a string":          withIngress(`  ingress: {rateLimit: 1/s, burst: "2"}`),
		"ingress port a number":   withIngress("  ingress: {port: 8080}"),
		"schema a mapping":        withIngress("  ingress: {schema: {type: object}}"),
		"schemaJSON a list":       withIngress("  ingress: {schemaJSON: [true]}"),
		"maxBodyBytes bad unit":   withIngress("  ingress: {maxBodyBytes: 1MB}"),
		"maxBodyBytes of zero":    withIngress("  ingress: {maxBodyBytes: 0}"),
		"too many constraints":    withSpec("  placement: {constraints: [" + strings.TrimSuffix(strings.Repeat("label.a exists, ", 33), ", ") + "]}"),
	}
	for name, text := range bad {
		if _, err := Decode("bad.yaml", []byte(text)); err == nil {
			t.Errorf("%s: Decode accepted it", name)
		}
		for _, doc := range yamlDocs(t, text) {
			if err := sch.Validate(doc); err == nil {
				t.Errorf("%s: the schema accepted it", name)
			}
		}
	}
}

// Every field of the Go types is in the schema at the same place, with
// additionalProperties false, and the schema has no field the types do not have.
func TestSchemaCoversEveryField(t *testing.T) {
	t.Parallel()
	var root map[string]any
	if err := json.Unmarshal(Schema(), &root); err != nil {
		t.Fatal(err)
	}
	defs := root["$defs"].(map[string]any)
	var walk func(path string, typ reflect.Type, node map[string]any)
	// object finds the object form of node, through $ref and oneOf (short forms).
	object := func(node map[string]any) map[string]any {
		for range 5 {
			if ref, ok := node["$ref"].(string); ok {
				node = defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
				continue
			}
			if _, ok := node["properties"]; ok {
				return node
			}
			for _, b := range asSlice(node["oneOf"]) {
				if bm := b.(map[string]any); bm["type"] == "object" {
					return bm
				}
			}
			return nil
		}
		return nil
	}
	walk = func(path string, typ reflect.Type, node map[string]any) {
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if typ.Implements(reflect.TypeFor[json.Marshaler]()) {
			// A type with its own text form (a quantity, a constraint): the schema
			// describes the text, which the decoder's tests cover.
			if resolveRef(defs, node)["type"] != "string" && resolveRef(defs, node)["oneOf"] == nil {
				t.Errorf("%s: %s has a text form but its schema is neither a string nor a choice of forms", path, typ)
			}
			return
		}
		switch typ.Kind() {
		case reflect.Slice:
			items := node
			if it, ok := resolveRef(defs, node)["items"].(map[string]any); ok {
				items = it
			} else {
				for _, b := range asSlice(resolveRef(defs, node)["oneOf"]) {
					if bm := b.(map[string]any); bm["type"] == "array" {
						items = bm["items"].(map[string]any)
					}
				}
			}
			walk(path+"[]", typ.Elem(), items)
			return
		case reflect.Struct:
		default:
			return
		}
		obj := object(node)
		if obj == nil {
			t.Errorf("%s: no object schema for %s", path, typ)
			return
		}
		if obj["additionalProperties"] != false {
			t.Errorf("%s: additionalProperties is not false", path)
		}
		if _, ok := obj["description"]; !ok && path != "" {
			if _, ok := node["description"]; !ok {
				t.Errorf("%s: no description", path)
			}
		}
		props := obj["properties"].(map[string]any)
		seen := map[string]bool{}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			seen[name] = true
			p, ok := props[name].(map[string]any)
			if !ok {
				t.Errorf("%s: field %s is not in the schema", path, name)
				continue
			}
			if _, ok := p["description"]; !ok {
				if _, ok := resolveRef(defs, p)["description"]; !ok {
					t.Errorf("%s.%s: no description", path, name)
				}
			}
			walk(path+"."+name, f.Type, p)
		}
		for name := range props {
			if !seen[name] {
				t.Errorf("%s: schema field %s is not in the Go type %s", path, name, typ)
			}
		}
	}
	walk("", reflect.TypeFor[Service](), root)
}

func resolveRef(defs map[string]any, node map[string]any) map[string]any {
	if ref, ok := node["$ref"].(string); ok {
		return defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
	}
	return node
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}
