package manifest

import (
	"encoding/json"
	"errors"
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
