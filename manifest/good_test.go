package manifest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func decodeOne(t *testing.T, yaml string) *Service {
	t.Helper()
	svcs, err := Decode("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(svcs) != 1 {
		t.Fatalf("Decode returned %d services, want 1", len(svcs))
	}
	return svcs[0]
}

func TestDecodeGoodRoundTrip(t *testing.T) {
	t.Parallel()
	for name, text := range goodManifests(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			svcs, err := Decode(name, []byte(text))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			for _, s := range svcs {
				if errs := s.Validate(); len(errs) > 0 {
					t.Errorf("Validate after Decode: %v", errs)
				}
				before := s.clone()
				s.Default()
				if !reflect.DeepEqual(s, before) {
					t.Errorf("Decode did not return a defaulted service, or Default is not idempotent:\n%+v\n%+v", before, s)
				}
				data, err := json.Marshal(s)
				if err != nil {
					t.Fatalf("json.Marshal: %v", err)
				}
				back, err := DecodeJSON(data)
				if err != nil {
					t.Fatalf("DecodeJSON(%s): %v", data, err)
				}
				if !reflect.DeepEqual(back, s) {
					t.Errorf("JSON round trip changed the service:\n got %+v\nwant %+v\njson %s", back, s, data)
				}
				again, _ := json.Marshal(back)
				if string(again) != string(data) {
					t.Errorf("JSON form is not stable:\n%s\n%s", data, again)
				}
			}
		})
	}
}

func TestDecodeFullManifest(t *testing.T) {
	t.Parallel()
	got := decodeOne(t, goodFull)
	want := &Service{
		APIVersion: "qnet/v1",
		Kind:       "Service",
		Metadata: Metadata{
			Name:    "web",
			Network: "testnet",
			Labels:  map[string]string{"app": "web", "tier": "frontend", "qnet.dev/owner": "ops"},
		},
		Spec: Spec{
			Depot:     Depot{Exec: &ExecDepot{Command: "./bin/web", Args: []string{"--listen", ":8080", "--workers", "4"}, WorkingDir: "/srv/web"}},
			Replicas:  3,
			Resources: Resources{CPU: 250, Memory: 3 << 29},
			Ports: []Port{
				{Name: "http", Port: 8080, Protocol: "tcp", Expose: true},
				{Name: "metrics", Port: 9090, HostPort: 19090, Protocol: "tcp"},
				{Name: "dns", Port: 53, Protocol: "udp"},
			},
			Env: map[string]string{"LOG_LEVEL": "info", "WORKERS": "4", "DEBUG": "false"},
			Health: Health{
				Liveness: &Probe{
					HTTP:             &HTTPCheck{Path: "/healthz", Port: "http"},
					InitialDelay:     Duration(2 * time.Second),
					Interval:         Duration(5 * time.Second),
					Timeout:          Duration(500 * time.Millisecond),
					FailureThreshold: 5,
					SuccessThreshold: 1,
				},
				Readiness: &Probe{
					TCP:              &TCPCheck{Port: "9090"},
					Interval:         Duration(2 * time.Second),
					Timeout:          Duration(time.Second),
					FailureThreshold: 3,
					SuccessThreshold: 1,
				},
			},
			Restart: Restart{Policy: RestartOnFailure, Backoff: Duration(200 * time.Millisecond), MaxBackoff: Duration(time.Minute)},
			Placement: Placement{
				Strategy: StrategySpread,
				SpreadBy: "zone",
				Constraints: []Constraint{
					{Attr: "arch", Op: OpEqual, Values: []string{"arm64"}},
					{Attr: "os", Op: OpEqual, Values: []string{"linux"}},
					{Attr: "label.zone", Op: OpNotEqual, Values: []string{"eu-west-1"}},
					{Attr: "label.gpu", Op: OpExists},
					{Attr: "label.tier", Op: OpIn, Values: []string{"edge", "core"}},
					{Attr: "label.old", Op: OpNotExists},
					{Attr: "name", Op: OpNotIn, Values: []string{"gw-1", "gw-2"}},
					{Attr: "id", Op: OpNotEqual, Values: []string{"0123456789abcdef"}},
				},
			},
			Flows: &Flows{Allow: []string{"db", "cache", "web"}},
			Ingress: &Ingress{RateLimit: Rate{Count: 200, Per: time.Second}, Burst: 400, Port: "http",
				MaxBodyBytes: 1 << 20, Schema: "./order.schema.json"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decode:\n got %+v\nwant %+v", got, want)
	}
}

func TestDecodeDepots(t *testing.T) {
	t.Parallel()
	img := decodeOne(t, goodImage)
	wantImage := &ImageDepot{Ref: "registry.local/web:1.2", Digest: digestA, Command: []string{"/app/web"},
		Args: []string{"--port", "8080"}, WorkingDir: "/app", User: "1000:1000", ReadOnlyRoot: true}
	if !reflect.DeepEqual(img.Spec.Depot, Depot{Image: wantImage}) {
		t.Errorf("image depot = %+v, want %+v", img.Spec.Depot.Image, wantImage)
	}
	if k := img.Spec.Depot.Kind(); k != DepotImage {
		t.Errorf("Kind = %q, want image", k)
	}

	svcs, err := Decode("images.yaml", []byte(goodImageShort))
	if err != nil || len(svcs) != 2 {
		t.Fatalf("Decode = %d services, %v; want 2", len(svcs), err)
	}
	if got, want := svcs[0].Spec.Depot, (Depot{Image: &ImageDepot{Ref: "redis:7"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("short image depot = %+v, want %+v: a reference to resolve, no digest yet", got.Image, want.Image)
	}
	// A reference that is a digest is its own digest, and a bare uid is a user.
	if got, want := svcs[1].Spec.Depot, (Depot{Image: &ImageDepot{Ref: digestB, Digest: digestB, User: "999"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("digest image depot = %+v, want %+v", got.Image, want.Image)
	}

	svcs, err = Decode("wasm.yaml", []byte(goodWasm))
	if err != nil || len(svcs) != 2 {
		t.Fatalf("Decode = %d services, %v; want 2", len(svcs), err)
	}
	if got, want := svcs[0].Spec.Depot, (Depot{Wasm: &WasmDepot{Module: "hello:1", Digest: digestB, Args: []string{"serve", "--verbose"}}}); !reflect.DeepEqual(got, want) {
		t.Errorf("wasm depot = %+v, want %+v", got.Wasm, want.Wasm)
	}
	if got, want := svcs[1].Spec.Depot, (Depot{Wasm: &WasmDepot{Module: "./hello.wasm"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("short wasm depot = %+v, want %+v", got.Wasm, want.Wasm)
	}
	if k := svcs[1].Spec.Depot.Kind(); k != DepotWasm {
		t.Errorf("Kind = %q, want wasm", k)
	}
}

func TestDepotKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    Depot
		want string
	}{
		{Depot{Exec: &ExecDepot{Command: "web"}}, "exec"},
		{Depot{Image: &ImageDepot{Ref: "web"}}, "image"},
		{Depot{Wasm: &WasmDepot{Module: "web"}}, "wasm"},
		{Depot{}, ""},
		{Depot{Image: &ImageDepot{}, Wasm: &WasmDepot{}}, "image"},
	}
	for _, tt := range tests {
		if got := tt.d.Kind(); got != tt.want {
			t.Errorf("Kind of %+v = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestValidateResolved(t *testing.T) {
	t.Parallel()
	svc := func(d Depot) *Service {
		return &Service{APIVersion: APIVersion, Kind: KindService, Metadata: Metadata{Name: "web"}, Spec: Spec{Depot: d, Replicas: 1}}
	}
	tests := []struct {
		name string
		d    Depot
		want string // of ValidateResolved; Validate accepts them all
	}{
		{"exec needs no digest", Depot{Exec: &ExecDepot{Command: "web"}}, ""},
		{"image reference without digest", Depot{Image: &ImageDepot{Ref: "registry.local/web:1.2"}},
			"spec.depot.image.digest: must be set: apply resolves image references to digests so every revision is immutable; got none"},
		{"image with digest", Depot{Image: &ImageDepot{Ref: "registry.local/web:1.2", Digest: digestA}}, ""},
		{"image reference that is a digest", Depot{Image: &ImageDepot{Ref: digestA}}, ""},
		{"wasm reference without digest", Depot{Wasm: &WasmDepot{Module: "./hello.wasm"}},
			"spec.depot.wasm.digest: must be set: apply resolves wasm module references to digests so every revision is immutable; got none"},
		{"wasm with digest", Depot{Wasm: &WasmDepot{Module: "hello:1", Digest: digestB}}, ""},
		{"wasm reference that is a digest", Depot{Wasm: &WasmDepot{Module: digestB}}, ""},
	}
	for _, tt := range tests {
		s := svc(tt.d)
		before := s.clone()
		if err := s.Validate().Err(); err != nil {
			t.Errorf("%s: Validate: %v", tt.name, err)
		}
		got := ""
		if err := s.ValidateResolved().Err(); err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%s: ValidateResolved = %q, want %q", tt.name, got, tt.want)
		}
		if !reflect.DeepEqual(s, before) {
			t.Errorf("%s: ValidateResolved changed the service", tt.name)
		}
	}
	// ValidateResolved still finds what Validate finds, with the digest in document order.
	s := svc(Depot{Image: &ImageDepot{Ref: "web 1.2", User: "Root"}})
	s.Spec.Replicas = -1
	want := `spec.depot.image.ref: must not contain whitespace or control characters, got "web 1.2"` + "\n" +
		"spec.depot.image.digest: must be set: apply resolves image references to digests so every revision is immutable; got none\n" +
		`spec.depot.image.user: must be uid[:gid], each a number (0-4294967294) or a name from the image (a-z, 0-9, '_' and '-', starting with a letter or '_', at most 32 characters), like 1000:1000 or nobody, got "Root"` + "\n" +
		"spec.replicas: must be between 0 and 10000, got -1"
	if got := s.ValidateResolved().Error(); got != want {
		t.Errorf("ValidateResolved =\n%s\nwant\n%s", got, want)
	}
	if (*Service)(nil).ValidateResolved().Err() == nil {
		t.Errorf("ValidateResolved of nil is fine; want an error")
	}
	// A decoded manifest whose image reference is a digest is resolved as it stands.
	for _, text := range []string{withDepot("    image: " + digestA), withDepot("    wasm: {module: " + digestB + "}")} {
		if err := decodeOne(t, text).ValidateResolved().Err(); err != nil {
			t.Errorf("ValidateResolved of a digest reference: %v", err)
		}
	}
}

func TestValidateDepotRules(t *testing.T) {
	t.Parallel()
	long := "registry.local/" + strings.Repeat("w", 497) // 512 characters
	good := []*ImageDepot{
		{Ref: long},
		{Ref: "web", User: "0"},
		{Ref: "web", User: "4294967294:4294967294"},
		{Ref: "web", User: "_apt:nogroup"},
		{Ref: "web", User: "www-data:" + strings.Repeat("g", 32)},
		{Ref: "web", User: "1000:staff"},
		{Ref: "web", WorkingDir: "/"},
		{Ref: "localhost:5000/team/web@" + digestA},
	}
	for _, im := range good {
		s := &Service{APIVersion: APIVersion, Kind: KindService, Metadata: Metadata{Name: "web"}, Spec: Spec{Depot: Depot{Image: im}}}
		if err := s.Validate().Err(); err != nil {
			t.Errorf("Validate(%+v): %v", im, err)
		}
	}
	bad := map[string]*ImageDepot{
		"spec.depot.image.ref":        {Ref: long + "w"},
		"spec.depot.image.user":       {Ref: "web", User: strings.Repeat("u", 33)},
		"spec.depot.image.command[1]": {Ref: "web", Command: []string{"/bin/sh", "a\x00b"}},
		"spec.depot.image.workingDir": {Ref: "web", WorkingDir: "/a\x00"},
	}
	for field, im := range bad {
		s := &Service{APIVersion: APIVersion, Kind: KindService, Metadata: Metadata{Name: "web"}, Spec: Spec{Depot: Depot{Image: im}}}
		errs := s.Validate()
		if len(errs) != 1 || errs[0].Field != field {
			t.Errorf("Validate(%+v) = %v, want one error at %s", im, errs, field)
		}
	}
}

func TestShortFormsEqualLongForms(t *testing.T) {
	t.Parallel()
	tests := []struct{ short, long string }{
		{"    liveness: {http: /healthz}", "    liveness: {http: {path: /healthz}}"},
		{"    liveness: {tcp: http}", "    liveness: {tcp: {port: http}}"},
		{"    liveness: {tcp: 8080}", `    liveness: {tcp: {port: "8080"}}`},
		{"    liveness: {http: {path: /, port: 8080}}", `    liveness: {http: {path: /, port: "8080"}}`},
		{"    liveness: {exec: [check, -q]}", "    liveness: {exec: {command: [check, -q]}}"},
		{"    liveness: {exec: [check, 1]}", `    liveness: {exec: {command: [check, "1"]}}`},
	}
	for _, tt := range tests {
		short := decodeOne(t, withSpec("  ports: [{name: http, port: 8080}]", "  health:", tt.short))
		long := decodeOne(t, withSpec("  ports: [{name: http, port: 8080}]", "  health:", tt.long))
		if !reflect.DeepEqual(short, long) {
			t.Errorf("%q and %q decode differently:\n%+v\n%+v", tt.short, tt.long, short.Spec.Health.Liveness, long.Spec.Health.Liveness)
		}
	}
	a := decodeOne(t, strings.Replace(head, "exec: {command: web}", "exec: web", 1))
	b := decodeOne(t, head)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("exec: web and exec: {command: web} decode differently")
	}
	for _, tt := range []struct{ short, long string }{
		{"    image: registry.local/web:1.2", "    image: {ref: registry.local/web:1.2}"},
		{"    image: " + digestA, "    image: {ref: " + digestA + ", digest: " + digestA + "}"},
		{"    wasm: ./hello.wasm", "    wasm: {module: ./hello.wasm}"},
		{"    wasm: " + digestB, "    wasm: {module: " + digestB + ", digest: " + digestB + "}"},
	} {
		short, long := decodeOne(t, withDepot(tt.short)), decodeOne(t, withDepot(tt.long))
		if !reflect.DeepEqual(short, long) {
			t.Errorf("%q and %q decode differently:\n%+v\n%+v", tt.short, tt.long, short.Spec.Depot, long.Spec.Depot)
		}
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	s := decodeOne(t, withSpec("  ports: [{name: http, port: 8080}, {name: admin, port: 9000}]",
		"  health:", "    liveness: {http: /healthz}", "    readiness: {tcp: {}, interval: 300ms}"))
	sp := s.Spec
	if sp.Replicas != 1 {
		t.Errorf("replicas = %d, want 1 when the key is absent", sp.Replicas)
	}
	if sp.Resources.CPU != 100 || sp.Resources.Memory != 64<<20 {
		t.Errorf("resources = %v/%v, want 100m/64Mi", sp.Resources.CPU, sp.Resources.Memory)
	}
	for _, p := range sp.Ports {
		if p.Protocol != "tcp" {
			t.Errorf("port %s protocol = %q, want tcp", p.Name, p.Protocol)
		}
	}
	live := sp.Health.Liveness
	wantLive := &Probe{HTTP: &HTTPCheck{Path: "/healthz", Port: "http"}, Interval: Duration(10 * time.Second),
		Timeout: Duration(time.Second), FailureThreshold: 3, SuccessThreshold: 1}
	if !reflect.DeepEqual(live, wantLive) {
		t.Errorf("liveness = %+v, want %+v", live, wantLive)
	}
	ready := sp.Health.Readiness
	if ready.TCP.Port != "http" {
		t.Errorf("tcp check port = %q, want the first port, http", ready.TCP.Port)
	}
	if ready.Timeout != Duration(300*time.Millisecond) {
		t.Errorf("timeout = %v, want the interval (300ms) when it is shorter than 1s", ready.Timeout)
	}
	if want := (Restart{Policy: RestartAlways, Backoff: Duration(100 * time.Millisecond), MaxBackoff: Duration(30 * time.Second)}); sp.Restart != want {
		t.Errorf("restart = %+v, want %+v", sp.Restart, want)
	}

	zero := decodeOne(t, withSpec("  replicas: 0"))
	if zero.Spec.Replicas != 0 {
		t.Errorf("explicit replicas: 0 became %d", zero.Spec.Replicas)
	}
	null := decodeOne(t, withSpec("  replicas:"))
	if null.Spec.Replicas != 1 {
		t.Errorf("replicas: (null) = %d, want 1 as if absent", null.Spec.Replicas)
	}

	slow := decodeOne(t, withSpec("  restart: {backoff: 2m}"))
	if slow.Spec.Restart.MaxBackoff != Duration(2*time.Minute) {
		t.Errorf("maxBackoff = %v, want backoff (2m) when it is above 30s", slow.Spec.Restart.MaxBackoff)
	}

	// In Go, Replicas is what the caller set: Default does not touch it.
	g := &Service{}
	g.Default()
	if g.Spec.Replicas != 0 {
		t.Errorf("Default changed Replicas from 0 to %d", g.Spec.Replicas)
	}
	once := g.clone()
	g.Default()
	if !reflect.DeepEqual(g, once) {
		t.Errorf("Default is not idempotent")
	}
	var nilSvc *Service
	nilSvc.Default() // must not panic
}

func TestValidateWithoutPositions(t *testing.T) {
	t.Parallel()
	s := &Service{
		APIVersion: APIVersion, Kind: KindService, Metadata: Metadata{Name: "web"},
		Spec: Spec{Depot: Depot{Exec: &ExecDepot{Command: "web"}}, Replicas: 20000,
			Ports: []Port{{Name: "http", Port: 80}}},
	}
	before := s.clone()
	errs := s.Validate()
	want := "spec.replicas: must be between 0 and 10000, got 20000"
	if errs.Error() != want {
		t.Errorf("Validate = %q, want %q", errs.Error(), want)
	}
	if errs[0].Line != 0 || errs[0].Col != 0 || errs[0].File != "" {
		t.Errorf("Validate gave a position: %+v", errs[0])
	}
	if !reflect.DeepEqual(s, before) {
		t.Errorf("Validate changed the service")
	}
	s.Spec.Replicas = 0
	if err := s.Validate().Err(); err != nil {
		t.Errorf("Validate of a valid service without defaults: %v", err)
	}
	if (*Service)(nil).Validate().Err() == nil {
		t.Errorf("Validate of nil is fine; want an error")
	}
}

func TestDecodeJSONStrict(t *testing.T) {
	t.Parallel()
	ok := `{"apiVersion":"qnet/v1","kind":"Service","metadata":{"name":"web"},"spec":{"depot":{"exec":{"command":"web"}}}}`
	if _, err := DecodeJSON([]byte(ok)); err != nil {
		t.Fatalf("DecodeJSON: %v", err)
	}
	tests := []struct{ in, want string }{
		{`{"apiVersion":"qnet/v1","kind":"Service","metadata":{"name":"web"},"spec":{"depot":{"exec":{"command":"web"}},"Replicas":2}}`,
			"1:111: spec.Replicas: unknown field (did you mean replicas?); valid fields are depot, replicas, resources, ports, env, health, restart, placement, flows, ingress, secrets, configs and rollout"},
		{`{"apiVersion":"qnet/v1","apiVersion":"qnet/v1"}`, `1:25: invalid JSON: mapping key "apiVersion" already defined at [1:2]`},
		{`{"apiVersion": "qnet/v1",`, "1:25: invalid JSON: unexpected end of JSON input; want one JSON object holding a Service manifest"},
		{"apiVersion: qnet/v1\n", "1:1: invalid JSON: invalid character 'a' looking for beginning of value; want one JSON object holding a Service manifest"},
		{`["a"]`, "1:1: must be a JSON object holding a Service manifest"},
		{`{"spec": {"resources": {"cpu": 0.5}}}`, "1:1: apiVersion: must be qnet/v1, got nothing\n1:1: kind: must be Service, got nothing\n" +
			"1:1: metadata.name: is required: a DNS label (" + dnsRule + ")\n" +
			"1:2: " + noDepot},
	}
	for _, tt := range tests {
		_, err := DecodeJSON([]byte(tt.in))
		if err == nil || err.Error() != tt.want {
			t.Errorf("DecodeJSON(%s) error:\n%v\nwant:\n%s", tt.in, err, tt.want)
		}
		var list ErrorList
		if !errors.As(err, &list) {
			t.Errorf("DecodeJSON(%s) error is %T, want ErrorList", tt.in, err)
		}
	}
}

func TestDecodePath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b.yml", goodMinimal)
	write("a.yaml", goodMulti)
	write("c.json", goodJSON)
	write("README.md", "not a manifest")
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	svcs, err := DecodePath(dir)
	if err != nil {
		t.Fatalf("DecodePath: %v", err)
	}
	var names []string
	for _, s := range svcs {
		names = append(names, s.Metadata.Name)
	}
	if got, want := strings.Join(names, ","), "front,back,api,cache"; got != want {
		t.Errorf("services = %s, want %s (files in name order)", got, want)
	}

	one, err := DecodePath(filepath.Join(dir, "b.yml"))
	if err != nil || len(one) != 1 || one[0].Metadata.Name != "api" {
		t.Errorf("DecodePath(file) = %v, %v; want the api service", one, err)
	}

	write("d.yaml", strings.Replace(goodMinimal, "name: api", "name: front", 1)+"---\n"+withSpec("  replicas: x"))
	_, err = DecodePath(dir)
	d := filepath.Join(dir, "d.yaml")
	want := d + `:3:18: metadata.name: must be unique, but service "front" is also defined at ` + filepath.Join(dir, "a.yaml") + ":4:18\n" +
		d + `:14:13: spec.replicas: must be an integer between 0 and 10000, got string "x"`
	if err == nil || err.Error() != want {
		t.Errorf("DecodePath error:\n%v\nwant:\n%s", err, want)
	}

	empty := t.TempDir()
	if _, err := DecodePath(empty); err == nil || !strings.Contains(err.Error(), "no *.yaml, *.yml or *.json files") {
		t.Errorf("DecodePath(empty dir) = %v, want a clear error", err)
	}
	if _, err := DecodePath(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("DecodePath(missing) = %v, want a wrapped not-exist error", err)
	}
	if _, err := DecodeFile(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("DecodeFile(missing) = %v, want a wrapped not-exist error", err)
	}
}

func TestFieldErrorFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		e    FieldError
		want string
	}{
		{FieldError{File: "a.yaml", Line: 3, Col: 4, Field: "spec", Msg: "bad"}, "a.yaml:3:4: spec: bad"},
		{FieldError{File: "a.yaml", Line: 1, Col: 1, Msg: "bad"}, "a.yaml:1:1: bad"},
		{FieldError{Line: 2, Col: 5, Field: "kind", Msg: "bad"}, "2:5: kind: bad"},
		{FieldError{Field: "kind", Msg: "bad"}, "kind: bad"},
		{FieldError{File: "a.yaml", Field: "kind", Msg: "bad"}, "a.yaml: kind: bad"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	if ErrorList(nil).Err() != nil {
		t.Errorf("empty ErrorList.Err() is not nil")
	}
}
