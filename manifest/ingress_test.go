package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	good := []struct {
		in        string
		want      Rate
		perSecond float64
		burst     int
	}{
		{"200/s", Rate{200, time.Second}, 200, 200},
		{"30/m", Rate{30, time.Minute}, 0.5, 1},
		{"90/m", Rate{90, time.Minute}, 1.5, 2},
		{"5/h", Rate{5, time.Hour}, 5.0 / 3600, 1},
		{"1/s", Rate{1, time.Second}, 1, 1},
		{"1000000000/s", Rate{MaxRateCount, time.Second}, 1e9, 1e9},
	}
	for _, tt := range good {
		got, err := ParseRate(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		if p := got.PerSecond(); p != tt.perSecond {
			t.Errorf("%s: PerSecond = %v, want %v", tt.in, p, tt.perSecond)
		}
		if b := got.DefaultBurst(); b != tt.burst {
			t.Errorf("%s: DefaultBurst = %d, want %d", tt.in, b, tt.burst)
		}
		if s := got.String(); s != tt.in {
			t.Errorf("String of %s = %q", tt.in, s)
		}
		js, err := json.Marshal(got)
		if err != nil || string(js) != `"`+tt.in+`"` {
			t.Errorf("json.Marshal(%s) = %s, %v", tt.in, js, err)
		}
		var back Rate
		if err := json.Unmarshal(js, &back); err != nil || back != got {
			t.Errorf("json.Unmarshal(%s) = %+v, %v", js, back, err)
		}
	}
	bad := []string{"", "200", "/s", "200/", "200/sec", "200/S", "200/d", " 200/s", "200 /s", "200/ s", "+5/s", "-5/s",
		"1.5/s", "1e3/s", "0x10/s", "007/s", "00/s", "1000000001/s", "99999999999/s", "5/s/s", "\u0663/s", "5/\u0455"}
	for _, in := range bad {
		r, err := ParseRate(in)
		if err == nil {
			t.Errorf("ParseRate(%q) = %+v; want an error", in, r)
			continue
		}
		if want := fmt.Sprintf("invalid rate %q: want %s", in, rateWant); err.Error() != want {
			t.Errorf("ParseRate(%q) error:\n%v\nwant\n%s", in, err, want)
		}
	}
	_, err := ParseRate("0/s")
	if want := `invalid rate "0/s": a rate must be more than 0; want ` + rateWant; err == nil || err.Error() != want {
		t.Errorf("ParseRate(0/s) = %v, want %s", err, want)
	}
	for _, js := range []string{`200`, `"0/s"`, `"fast"`, `null`} {
		var r Rate
		if err := json.Unmarshal([]byte(js), &r); err == nil && js != "null" {
			t.Errorf("json.Unmarshal(%s) = %+v; want an error", js, r)
		}
	}
	if s := (Rate{}).String(); s != "" {
		t.Errorf("zero Rate String = %q, want empty", s)
	}
	if s := (Rate{5, 2 * time.Second}).String(); s != "5/2s" {
		t.Errorf("String of an invalid Rate = %q, want 5/2s", s)
	}
}

func TestFlows(t *testing.T) {
	t.Parallel()
	var none *Flows
	if !none.Allows("db") {
		t.Errorf("nil flows (no flows section) must allow every service")
	}
	empty := &Flows{}
	if empty.Allows("db") {
		t.Errorf("empty flows must allow no service")
	}
	f := &Flows{Allow: []string{"db", "web"}}
	if !f.Allows("db") || !f.Allows("web") || f.Allows("cache") {
		t.Errorf("flows %v: Allows is wrong", f.Allow)
	}

	// Absent and null flows are no flows; an empty mapping and an empty or null list
	// allow none, and all three are written "allow":[] in JSON.
	for _, spec := range []string{"", "  flows:", "  flows: ~"} {
		if f := decodeOne(t, withSpec(spec)).Spec.Flows; f != nil {
			t.Errorf("%q: flows = %+v, want nil (every service)", spec, f)
		}
	}
	for _, spec := range []string{"  flows: {}", "  flows: {allow: []}", "  flows: {allow: ~}", "  flows:\n    allow:"} {
		s := decodeOne(t, withSpec(spec))
		if f := s.Spec.Flows; f == nil || f.Allow == nil || len(f.Allow) != 0 {
			t.Errorf("%q: flows = %+v, want an empty, non-nil allow list", spec, f)
		}
		js, _ := json.Marshal(s.Spec.Flows)
		if string(js) != `{"allow":[]}` {
			t.Errorf("%q: JSON form %s, want {\"allow\":[]}", spec, js)
		}
	}
	// A service may allow itself.
	s := decodeOne(t, withSpec("  flows: {allow: [web]}"))
	if !s.Spec.Flows.Allows("web") {
		t.Errorf("a service that allows itself: %+v", s.Spec.Flows)
	}
	// The bound is inclusive.
	s = decodeOne(t, withSpec("  flows: {allow: ["+manyNames(MaxFlowsAllow)+"]}"))
	if n := len(s.Spec.Flows.Allow); n != MaxFlowsAllow {
		t.Errorf("allow has %d names, want %d", n, MaxFlowsAllow)
	}
}

func TestDecodeIngress(t *testing.T) {
	t.Parallel()
	svcs, err := Decode("ingress.yaml", []byte(goodIngress))
	if err != nil || len(svcs) != 3 {
		t.Fatalf("Decode = %d services, %v; want 3", len(svcs), err)
	}
	orders, edge, open := svcs[0], svcs[1], svcs[2]
	// The first exposed tcp port (not the udp one before it), a burst of one second's
	// worth of 90/m rounded up, the default body limit.
	wantSchema := `{"$schema":"https://json-schema.org/draft/2020-12/schema","additionalProperties":false,` +
		`"properties":{"id":{"pattern":"^\u003c[A-Z]+\u003e$","type":"string"},` +
		`"note":{"description":"café","maxLength":256,"type":["string","null"]},` +
		`"qty":{"maximum":1e3,"minimum":1,"multipleOf":1.0,"type":"integer"}},"required":["id","qty"],"type":"object"}`
	want := &Ingress{RateLimit: Rate{90, time.Minute}, Burst: 2, Port: "api", MaxBodyBytes: DefaultMaxBodyBytes,
		SchemaJSON: json.RawMessage(wantSchema)}
	if got := orders.Spec.Ingress; !reflect.DeepEqual(got, want) {
		t.Errorf("orders ingress:\n got %+v\n%s\nwant %+v\n%s", got, got.SchemaJSON, want, want.SchemaJSON)
	}
	if f := orders.Spec.Flows; f == nil || len(f.Allow) != 0 {
		t.Errorf("orders flows = %+v, want none allowed", f)
	}
	// An empty ingress gets every default; no rate limit means no burst.
	if got, want := edge.Spec.Ingress, (&Ingress{Port: "web", MaxBodyBytes: DefaultMaxBodyBytes}); !reflect.DeepEqual(got, want) {
		t.Errorf("edge ingress = %+v, want %+v", got, want)
	}
	if got, want := open.Spec.Ingress, (&Ingress{RateLimit: Rate{5, time.Hour}, Burst: 1, Port: "web",
		MaxBodyBytes: DefaultMaxBodyBytes, SchemaJSON: json.RawMessage("true")}); !reflect.DeepEqual(got, want) {
		t.Errorf("open ingress = %+v, want %+v", got, want)
	}
	if open.Spec.Flows != nil {
		t.Errorf("open flows = %+v, want nil", open.Spec.Flows)
	}
	// A JSON form read back with encoding/json, as the state store does, is the same.
	for _, s := range svcs {
		js, _ := json.Marshal(s)
		var back Service
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatalf("json.Unmarshal(%s): %v", js, err)
		}
		if !reflect.DeepEqual(&back, s) {
			t.Errorf("encoding/json read back a different service:\n got %+v\nwant %+v", back.Spec.Ingress, s.Spec.Ingress)
		}
	}
	// Without spec.ingress a service has none; a null ingress is absent.
	for _, spec := range []string{"", "  ingress:"} {
		if in := decodeOne(t, withIngress(spec)).Spec.Ingress; in != nil {
			t.Errorf("%q: ingress = %+v, want nil", spec, in)
		}
	}
	// The largest body is allowed, and at most 64Mi with a schema.
	for _, spec := range []string{"  ingress: {maxBodyBytes: 16Gi}", "  ingress: {maxBodyBytes: 64Mi, schema: a.json}", "  ingress: {maxBodyBytes: 1}"} {
		decodeOne(t, withIngress(spec))
	}
}

func TestValidateIngressFromGo(t *testing.T) {
	t.Parallel()
	svc := func(in *Ingress) *Service {
		return &Service{APIVersion: APIVersion, Kind: KindService, Metadata: Metadata{Name: "web"},
			Spec: Spec{Depot: Depot{Exec: &ExecDepot{Command: "web"}}, Replicas: 1,
				Ports: []Port{{Name: "http", Port: 80, Expose: true}}, Ingress: in}}
	}
	tests := []struct {
		name string
		in   *Ingress
		want string
	}{
		{"defaults make it valid", &Ingress{RateLimit: Rate{10, time.Second}}, ""},
		{"rate with another period", &Ingress{RateLimit: Rate{5, 2 * time.Second}},
			"spec.ingress.rateLimit: must be a rate " + rateWant + ", got 5 per 2s"},
		{"rate of zero", &Ingress{RateLimit: Rate{0, time.Second}},
			"spec.ingress.rateLimit: must be a rate " + rateWant + ", got 0 per 1s"},
		{"negative burst", &Ingress{RateLimit: Rate{30, time.Minute}, Burst: -3},
			"spec.ingress.burst: must be between 1 and 1000000000 (leave it out for the rate per second, here 1), got -3"},
		{"negative body size", &Ingress{MaxBodyBytes: -1}, "spec.ingress.maxBodyBytes: must be between 1 and 16Gi, like 1Mi or 512Ki, got -1"},
		{"schema not JSON", &Ingress{SchemaJSON: json.RawMessage(`{"type":}`)},
			"spec.ingress.schemaJSON: must be a JSON Schema document, a JSON object or true or false: at 1:9: invalid JSON: invalid character '}' looking for beginning of value"},
		{"schema with a key twice", &Ingress{SchemaJSON: json.RawMessage(`{"type":"object",` + "\n" + `  "type":"array"}`)},
			`spec.ingress.schemaJSON: must be a JSON Schema document, a JSON object or true or false: at 2:3: key "type" is written twice in one object; JSON keeps only one of them, so write it once`},
		{"schema a number", &Ingress{SchemaJSON: json.RawMessage(`1.5`)},
			"spec.ingress.schemaJSON: must be a JSON Schema document: a JSON object or true or false, got number 1.5"},
		{"schema null", &Ingress{SchemaJSON: json.RawMessage(`null`)},
			"spec.ingress.schemaJSON: must be a JSON Schema document: a JSON object or true or false, got null"},
		{"schema too large", &Ingress{SchemaJSON: json.RawMessage(`{"description":"` + strings.Repeat("x", MaxSchemaSize) + `"}`)},
			"spec.ingress.schemaJSON: must be at most 262144 bytes (256 KiB), got 262162"},
		{"schema path too long", &Ingress{Schema: strings.Repeat("a", 4097), SchemaJSON: json.RawMessage(`{}`)},
			"spec.ingress.schema: must be a file path of at most 4096 characters, got 4097"},
	}
	for _, tt := range tests {
		s := svc(tt.in)
		before := s.clone()
		got := ""
		if err := s.Validate().Err(); err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%s: Validate =\n%s\nwant\n%s", tt.name, got, tt.want)
		}
		if !reflect.DeepEqual(s, before) {
			t.Errorf("%s: Validate changed the service", tt.name)
		}
	}
	// Flows too: a Go caller's nil allow list is an empty one.
	s := svc(nil)
	s.Spec.Flows = &Flows{}
	if err := s.Validate().Err(); err != nil {
		t.Errorf("empty flows: %v", err)
	}
	s.Spec.Flows = &Flows{Allow: strings.Split(manyNames(MaxFlowsAllow+1), ", ")}
	if got, want := s.Validate().Error(), "spec.flows.allow: must name at most 256 services, got 257"; got != want {
		t.Errorf("too many flows: %s, want %s", got, want)
	}
}

// orderSchema is testdata/order.schema.json in its canonical form: compact, keys sorted,
// numbers as written, escapes decoded and <, >, & escaped as encoding/json does.
const orderSchema = `{"$schema":"https://json-schema.org/draft/2020-12/schema","additionalProperties":false,` +
	`"properties":{"id":{"pattern":"^ord-[0-9a-f]{8}$","type":"string"},` +
	`"lines":{"items":{"properties":{"price":{"exclusiveMaximum":123456789012345678901234567890,"multipleOf":0.01,"type":"number"},` +
	`"qty":{"maximum":1e3,"minimum":1,"type":"integer"},"sku":{"type":"string"}},"required":["sku","qty"],"type":"object"},"minItems":1,"type":"array"},` +
	`"note":{"description":"café \u2028 😀","maxLength":280,"type":["string","null"]}},` +
	`"required":["id","lines"],"title":"An order \u003cfrom the shop\u003e \u0026 its lines","type":"object"}`

func TestResolveFiles(t *testing.T) {
	t.Parallel()
	s := decodeOne(t, withIngress("  ingress: {schema: ./order.schema.json, rateLimit: 200/s}"))
	const missing = "spec.ingress.schemaJSON: must be set: apply reads the schema file (./order.schema.json) into it so every node checks the same schema; got none"
	if got := s.ValidateResolved().Error(); got != missing {
		t.Errorf("ValidateResolved before ResolveFiles = %q, want %q", got, missing)
	}
	if err := s.ResolveFiles("testdata", nil); err != nil {
		t.Fatalf("ResolveFiles: %v", err)
	}
	if got := string(s.Spec.Ingress.SchemaJSON); got != orderSchema {
		t.Errorf("SchemaJSON =\n%s\nwant\n%s", got, orderSchema)
	}
	if err := s.ValidateResolved().Err(); err != nil {
		t.Errorf("ValidateResolved after ResolveFiles: %v", err)
	}
	// The revision survives the trip to the ledger and back, both ways of reading it.
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeJSON(js)
	if err != nil {
		t.Fatalf("DecodeJSON(%s): %v", js, err)
	}
	if !reflect.DeepEqual(back, s) {
		t.Errorf("DecodeJSON changed the service:\n%s\n%s", back.Spec.Ingress.SchemaJSON, s.Spec.Ingress.SchemaJSON)
	}
	var viaJSON Service
	if err := json.Unmarshal(js, &viaJSON); err != nil || !reflect.DeepEqual(&viaJSON, s) {
		t.Errorf("json.Unmarshal changed the service: %v", err)
	}
	// The same document written inline in YAML decodes to the same bytes.
	inline := decodeOne(t, withIngress("  ingress:", "    schemaJSON:",
		`      $schema: "https://json-schema.org/draft/2020-12/schema"`,
		`      title: An order <from the shop> & its lines`,
		"      type: object",
		"      required: [id, lines]",
		"      additionalProperties: false",
		"      properties:",
		`        id: {type: string, pattern: "^ord-[0-9a-f]{8}$"}`,
		`        note: {type: [string, "null"], maxLength: 280, description: "caf\u00e9 \u2028 \U0001F600"}`,
		"        lines:",
		"          type: array",
		"          minItems: 1",
		"          items:",
		"            type: object",
		"            required: [sku, qty]",
		"            properties:",
		"              sku: {type: string}",
		"              qty: {type: integer, minimum: 1, maximum: 1e3}",
		"              price: {type: number, multipleOf: 0.01, exclusiveMaximum: 123456789012345678901234567890}"))
	if got := string(inline.Spec.Ingress.SchemaJSON); got != orderSchema {
		t.Errorf("inline SchemaJSON =\n%s\nwant\n%s", got, orderSchema)
	}

	// A service that carries its schema already is not read again; one without an
	// ingress schema has nothing to read.
	noRead := func(string) ([]byte, error) {
		t.Error("ResolveFiles read a file it did not need")
		return nil, errors.New("no")
	}
	if err := back.ResolveFiles("elsewhere", noRead); err != nil {
		t.Errorf("ResolveFiles of a resolved service: %v", err)
	}
	for _, text := range []string{goodMinimal, withIngress("  ingress: {rateLimit: 1/s}")} {
		if err := decodeOne(t, text).ResolveFiles("", noRead); err != nil {
			t.Errorf("ResolveFiles without a schema: %v", err)
		}
	}
	if err := (*Service)(nil).ResolveFiles("", noRead); err != nil {
		t.Errorf("ResolveFiles(nil): %v", err)
	}

	// Relative paths are read from baseDir, absolute ones as they are.
	abs := filepath.Join(t.TempDir(), "s.json")
	for schema, want := range map[string]string{"s.json": filepath.Join("conf", "s.json"), "./sub/s.json": filepath.Join("conf", "sub", "s.json"), abs: abs} {
		var read string
		s := decodeOne(t, withIngress("  ingress: {schema: "+schema+"}"))
		err := s.ResolveFiles("conf", func(p string) ([]byte, error) { read = p; return []byte(" true\n"), nil })
		if err != nil || read != want || string(s.Spec.Ingress.SchemaJSON) != "true" {
			t.Errorf("schema %s: read %q (want %q), SchemaJSON %s, %v", schema, read, want, s.Spec.Ingress.SchemaJSON, err)
		}
	}
}

func TestResolveFilesErrors(t *testing.T) {
	t.Parallel()
	const prefix = "spec.ingress.schema: schema file " + "dir/s.json"
	deep := strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65)
	tests := []struct {
		name, file, want string
	}{
		{"not JSON", "{\n  \"type\": object\n}", prefix + ":2:11: invalid JSON: invalid character 'o' looking for beginning of value"},
		{"YAML is not JSON", "type: object\n", prefix + ":1:2: invalid JSON: invalid character 'y' in literal true (expecting 'r')"},
		{"two documents", "{} {}", prefix + ":1:4: invalid JSON: invalid character '{' after top-level value"},
		{"empty", "", prefix + ":1:1: invalid JSON: unexpected end of JSON input"},
		{"a list", `[{"type": "object"}]`, prefix + ": must hold a JSON Schema document: a JSON object or true or false, got a list"},
		{"a string", `"object"`, prefix + `: must hold a JSON Schema document: a JSON object or true or false, got a string`},
		{"a key twice", "{\"properties\": {\"a\": {\"type\": \"string\",\n \"type\": \"number\"}}}",
			prefix + `:2:2: key "type" is written twice in one object; JSON keeps only one of them, so write it once`},
		{"a key twice, with escapes", `{"a\"b": 1, "a\"b": 2}`, prefix + `:1:13: key "a\"b" is written twice in one object; JSON keeps only one of them, so write it once`},
		{"too deep", deep, prefix + ":1:321: nests deeper than 64 levels; a JSON Schema needs far fewer"},
		{"too large", `{"description": "` + strings.Repeat("x", MaxSchemaSize) + `"}`, prefix + " is 262163 bytes; it must be at most 262144 bytes (256 KiB)"},
		{"too many tokens", `{"enum": [` + strings.Repeat("1,", 9000) + `1]}`,
			prefix + " is too large to inline: the service's JSON form would be 18458 bytes and 18130 tokens (keys, values and punctuation); a manifest may have at most 1048576 bytes and 10000 tokens, so use a smaller schema"},
	}
	for _, tt := range tests {
		s := decodeOne(t, withIngress("  ingress: {schema: s.json}"))
		err := s.ResolveFiles("dir", func(string) ([]byte, error) { return []byte(tt.file), nil })
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: ResolveFiles error:\n%v\nwant\n%s", tt.name, err, tt.want)
		}
		if s.Spec.Ingress.SchemaJSON != nil {
			t.Errorf("%s: SchemaJSON set despite the error: %s", tt.name, s.Spec.Ingress.SchemaJSON)
		}
	}
	// A file that cannot be read: the error names the field and the file and wraps the cause.
	s := decodeOne(t, withIngress("  ingress: {schema: missing.schema.json}"))
	err := s.ResolveFiles("testdata", nil)
	want := "spec.ingress.schema: read schema file " + filepath.Join("testdata", "missing.schema.json") + ": open "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ResolveFiles of a missing file = %v; want %q... wrapping fs.ErrNotExist", err, want)
	}
	// A byte order mark is not part of the document.
	s = decodeOne(t, withIngress("  ingress: {schema: s.json}"))
	if err := s.ResolveFiles("", func(string) ([]byte, error) { return []byte("\xef\xbb\xbf{}"), nil }); err != nil || string(s.Spec.Ingress.SchemaJSON) != "{}" {
		t.Errorf("schema with a BOM: %s, %v", s.Spec.Ingress.SchemaJSON, err)
	}
}
