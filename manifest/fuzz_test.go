package manifest

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// checkErrors fails unless err is an ErrorList whose every error has file:line:col.
func checkErrors(t *testing.T, err error, file string) {
	t.Helper()
	var list ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("error is %T %v, want a non-empty ErrorList", err, err)
	}
	for _, e := range list {
		if e.File != file || e.Line < 1 || e.Col < 1 || e.Msg == "" {
			t.Fatalf("error without file:line:col or message: %#v", e)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, text := range goodManifests(f) {
		f.Add([]byte(text))
	}
	for _, b := range badManifests {
		if len(b.yaml) < 1<<16 {
			f.Add([]byte(b.yaml))
		}
	}
	for _, s := range []string{
		"a: &a [*a]", "*x", "!!str", "? [a]\n: 1", "<<: *a", "---\n...\n", "{", "- - - -", "\t",
		"apiVersion: !!str 1\nkind: !!binary aGk=", "spec: {depot: {exec: &e {command: x}}, env: *e}",
		"metadata: {labels: {? {a: 1} : 2}}", "spec: {ports: [~, [], {}]}",
		"spec: {depot: {image: &i {ref: x}, wasm: *i}}", "spec: {depot: {image: sha256:" + strings.Repeat("0", 64) + "}}",
		"spec: {depot: {image: {ref: sha256:" + strings.Repeat("a", 64) + ", digest: sha256:" + strings.Repeat("b", 64) + "}}}",
		"spec: {depot: {image: {ref: x, user: 1000:1000, command: [~], args: [1, true, 0x1f]}}}",
		"spec: {depot: {image: {ref: x, user: 0o17, readOnlyRoot: ~, workingDir: !!str}}}",
		"spec: {depot: {wasm: {module: \"a\\u2028b\", args: [\"\"]}}}", "spec: {depot: {wasm: [], image: {}}}",
		"spec: {depot: {exec: x}, flows: {allow: [a, a, ~, 1]}, ingress: {rateLimit: 1/h, burst: 3600}}",
		"spec: {depot: {exec: x}, ports: [{name: h, port: 1, expose: true}], ingress: {schemaJSON: {a: [1e400, 0x1f, .5, -0, 1_000, \"<&>\"]}}}",
		"spec: {depot: {exec: x}, ports: [{name: h, port: 1, expose: true}], ingress: {schemaJSON: &s {a: *s}}}",
		"spec: {depot: {exec: x}, ports: [{name: h, port: 1, expose: true, protocol: udp}], ingress: {port: h, maxBodyBytes: 1.5Ki}}",
		"spec: {depot: {exec: x}, ports: [{name: h, port: 1, expose: true}], ingress: {schemaJSON: {? [a] : 1, !!str 5: .nan}}}",
		"spec: {depot: {exec: x}, ports: [{name: h, port: 1, expose: true}], ingress: {schema: x.json, maxBodyBytes: 65Mi, rateLimit: 00/s}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		svcs, err := Decode("fuzz.yaml", data)
		if err != nil {
			checkErrors(t, err, "fuzz.yaml")
			if svcs != nil {
				t.Fatalf("services returned with an error")
			}
			return
		}
		for _, s := range svcs {
			if errs := s.Validate(); len(errs) > 0 {
				t.Fatalf("Decode returned a service that does not validate: %v", errs)
			}
			js, err := json.Marshal(s)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			back, err := DecodeJSON(js)
			if err != nil {
				t.Fatalf("DecodeJSON of the JSON form %s: %v", js, err)
			}
			if !reflect.DeepEqual(back, s) {
				t.Fatalf("JSON round trip changed the service:\n%+v\n%+v", s, back)
			}
		}
	})
}

func FuzzDecodeJSON(f *testing.F) {
	for name, text := range goodManifests(f) {
		svcs, err := Decode(name, []byte(text))
		if err != nil {
			f.Fatalf("Decode(%s): %v", name, err)
		}
		for _, s := range svcs {
			js, _ := json.Marshal(s)
			f.Add(js)
		}
	}
	for _, s := range []string{
		goodJSON, `{}`, `[]`, `"x"`, `{"apiVersion": "qnet/v1", "apiVersion": "x"}`, `{"a": 1} {"b": 2}`,
		`{"spec": {"replicas": 1e400}}`, `{"spec": {"env": {"A\u0000": "\u2028"}}}`, "{\t\"kind\":\t1}", `{"metadata": {"name": "a\/b"}}`,
		`{"apiVersion":"qnet/v1","kind":"Service","metadata":{"name":"web"},"spec":{"depot":{"image":"web:1.2"}}}`,
		`{"apiVersion":"qnet/v1","kind":"Service","metadata":{"name":"web"},"spec":{"depot":{"wasm":{"module":"sha256:` + strings.Repeat("c", 64) + `","args":[""]}}}}`,
		`{"spec":{"depot":{"image":{"ref":"x","user":4294967295,"digest":null}}}}`,
		`{"apiVersion":"qnet/v1","kind":"Service","metadata":{"name":"web"},"spec":{"depot":{"exec":{"command":"web"}},` +
			`"ports":[{"name":"http","port":80,"expose":true}],"flows":{"allow":["db","web"]},` +
			`"ingress":{"rateLimit":"200/s","burst":400,"port":"http","maxBodyBytes":"1Mi","schema":"./o.json",` +
			`"schemaJSON":{"type":"object","title":"\u003c\ud83d\ude00\u2028","maximum":1e400,"minimum":123456789012345678901234567890}}}}`,
		`{"spec":{"flows":{"allow":[]},"ingress":{"schemaJSON":{"a":1,"a":2},"rateLimit":"0/s","burst":-1}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeJSON(data)
		if err != nil {
			checkErrors(t, err, "")
			return
		}
		if errs := s.Validate(); len(errs) > 0 {
			t.Fatalf("DecodeJSON returned a service that does not validate: %v", errs)
		}
		js, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("json.Marshal: %v", err)
		}
		back, err := DecodeJSON(js)
		if err != nil {
			t.Fatalf("DecodeJSON of the JSON form %s: %v", js, err)
		}
		if !reflect.DeepEqual(back, s) {
			t.Fatalf("JSON round trip changed the service:\n%+v\n%+v", s, back)
		}
	})
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"200/s", "30/m", "5/h", "0/s", "1000000000/s", "1000000001/s", "007/s", "1.5/s", "-1/s", "/s", "1/", "1/d", "\u0663/s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			if !r.IsZero() {
				t.Fatalf("ParseRate(%q) = %+v with error %v; want the zero Rate", s, r, err)
			}
			return
		}
		if !r.valid() || r.String() != s {
			t.Fatalf("ParseRate(%q) = %+v, which is not valid or formats as %q", s, r, r.String())
		}
		if p := r.PerSecond(); p <= 0 || p > MaxRateCount {
			t.Fatalf("ParseRate(%q).PerSecond() = %v", s, p)
		}
		if b := r.DefaultBurst(); b < 1 || b > MaxRateCount {
			t.Fatalf("ParseRate(%q).DefaultBurst() = %d", s, b)
		}
	})
}

// FuzzResolveFiles feeds schema files to ResolveFiles: what it accepts must validate and
// come back unchanged from the ledger's JSON, read by DecodeJSON and by encoding/json.
func FuzzResolveFiles(f *testing.F) {
	order, err := os.ReadFile("testdata/order.schema.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(order), "true", "false", "{}", "[]", "null", "1", `"x"`, `{"a":1,"a":2}`, `{"a\"b":1, "a\"b":2}`,
		`{"a":"\ud800 \udfff \u0000 \u2028 <&> \/"}`, `{"n":[1e400, -0, 0.0, 1E+2, 123456789012345678901234567890]}`,
		strings.Repeat("[", 70), strings.Repeat(`{"a":`, 64) + "1" + strings.Repeat("}", 64), "\xef\xbb\xbf{}", "{\"a\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	base := withIngress("  ingress: {schema: s.json}")
	f.Fuzz(func(t *testing.T, data []byte) {
		svcs, err := Decode("web.yaml", []byte(base))
		if err != nil {
			t.Fatal(err)
		}
		s := svcs[0]
		err = s.ResolveFiles("", func(string) ([]byte, error) { return data, nil })
		if err != nil {
			if !strings.HasPrefix(err.Error(), "spec.ingress.schema: ") || s.Spec.Ingress.SchemaJSON != nil {
				t.Fatalf("ResolveFiles error %q (SchemaJSON %q)", err, s.Spec.Ingress.SchemaJSON)
			}
			return
		}
		if errs := s.ValidateResolved(); len(errs) > 0 {
			t.Fatalf("ResolveFiles made a service that does not validate: %v", errs)
		}
		js, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("json.Marshal: %v", err)
		}
		back, err := DecodeJSON(js)
		if err != nil {
			t.Fatalf("DecodeJSON(%s): %v", js, err)
		}
		if !reflect.DeepEqual(back, s) {
			t.Fatalf("DecodeJSON changed the schema:\n%s\n%s", s.Spec.Ingress.SchemaJSON, back.Spec.Ingress.SchemaJSON)
		}
		var viaJSON Service
		if err := json.Unmarshal(js, &viaJSON); err != nil || !reflect.DeepEqual(&viaJSON, s) {
			t.Fatalf("json.Unmarshal changed the service: %v", err)
		}
	})
}
