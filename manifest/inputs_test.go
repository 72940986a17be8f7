package manifest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

const inputsHead = `apiVersion: qnet/v1
kind: Service
metadata: {name: web}
spec:
  depot: {exec: ./web}
  env: {LOG_LEVEL: info}
`

func TestDecodeInputs(t *testing.T) {
	t.Parallel()
	s := decodeOne(t, inputsHead+`  secrets:
    - {name: db-password, env: DB_PASSWORD}
    - name: tls-key
      file: /run/secrets/tls.key
      env: TLS_KEY
  configs: [{name: nginx-conf, path: /etc/nginx/nginx.conf}]
`)
	wantS := []SecretRef{{Name: "db-password", Env: "DB_PASSWORD"}, {Name: "tls-key", Env: "TLS_KEY", File: "/run/secrets/tls.key"}}
	if !reflect.DeepEqual(s.Spec.Secrets, wantS) {
		t.Errorf("secrets = %+v, want %+v", s.Spec.Secrets, wantS)
	}
	wantC := []ConfigRef{{Name: "nginx-conf", Path: "/etc/nginx/nginx.conf"}}
	if !reflect.DeepEqual(s.Spec.Configs, wantC) {
		t.Errorf("configs = %+v, want %+v", s.Spec.Configs, wantC)
	}
	if got := s.Spec.SecretNames(); !reflect.DeepEqual(got, []string{"db-password", "tls-key"}) {
		t.Errorf("SecretNames = %v", got)
	}
	if got := s.Spec.ConfigNames(); !reflect.DeepEqual(got, []string{"nginx-conf"}) {
		t.Errorf("ConfigNames = %v", got)
	}
	// The JSON form (the ledger's) reads back the same.
	back, err := DecodeJSON(mustJSON(t, s))
	if err != nil || !reflect.DeepEqual(back.Spec.Secrets, wantS) || !reflect.DeepEqual(back.Spec.Configs, wantC) {
		t.Errorf("DecodeJSON round trip = %+v, %v", back, err)
	}
}

func TestDecodeInputsBad(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, spec string
		want       []string
	}{
		{"not a list", "  secrets: {name: x}\n",
			[]string{"web.yaml:7:12: spec.secrets: must be a list of secret references"}},
		{"unknown field", "  secrets: [{name: x, envv: X}]\n",
			[]string{"web.yaml:7:23: spec.secrets[0].envv: unknown field (did you mean env?)"}},
		{"neither env nor file", "  secrets: [{name: db-password}]\n",
			[]string{`web.yaml:7:13: spec.secrets[0]: must say how the depot gets secret "db-password": env`}},
		{"bad name", "  secrets: [{name: DB, env: X}]\n",
			[]string{`web.yaml:7:20: spec.secrets[0].name: must be a DNS label`}},
		{"missing name", "  secrets: [{env: X}]\n",
			[]string{`spec.secrets[0].name: is required`}},
		{"twice", "  secrets: [{name: a, env: A}, {name: a, file: /a}]\n",
			[]string{`web.yaml:7:39: spec.secrets[1].name: secret "a" is named twice`}},
		{"bad env", "  secrets: [{name: a, env: 1X}]\n",
			[]string{`web.yaml:7:28: spec.secrets[0].env: must be an environment variable name`}},
		{"qnet env", "  secrets: [{name: a, env: QNET_NODE}]\n",
			[]string{`spec.secrets[0].env: QNET_NODE is set by QNet`}},
		{"env clash", "  secrets: [{name: a, env: LOG_LEVEL}]\n",
			[]string{`spec.secrets[0].env: LOG_LEVEL is also set in spec.env`}},
		{"same env", "  secrets: [{name: a, env: X}, {name: b, env: X}]\n",
			[]string{`spec.secrets[1].env: X is already the variable of spec.secrets[0]`}},
		{"relative file", "  secrets: [{name: a, file: run/a}]\n",
			[]string{`web.yaml:7:29: spec.secrets[0].file: must be an absolute, clean file path`}},
		{"unclean file", "  secrets: [{name: a, file: /run/../a}]\n",
			[]string{`spec.secrets[0].file: must be an absolute, clean file path`}},
		{"same path", "  secrets: [{name: a, file: /etc/x}]\n  configs: [{name: c, path: /etc/x}]\n",
			[]string{`web.yaml:8:29: spec.configs[0].path: path "/etc/x" is already used by spec.secrets[0].file`}},
		{"config without path", "  configs: [{name: c}]\n",
			[]string{`spec.configs[0].path: is required`}},
		{"config name", "  configs: [{name: C_1, path: /c}]\n",
			[]string{`spec.configs[0].name: must be a DNS label`}},
		{"config twice", "  configs: [{name: c, path: /c}, {name: c, path: /d}]\n",
			[]string{`spec.configs[1].name: config "c" is named twice`}},
		{"config null", "  configs: [null]\n",
			[]string{`spec.configs[0]: must be a config reference`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode("web.yaml", []byte(inputsHead+tc.spec))
			if err == nil {
				t.Fatalf("Decode: no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestValidateInputsLimit(t *testing.T) {
	t.Parallel()
	s := decodeOne(t, inputsHead)
	for i := range MaxInputs + 1 {
		s.Spec.Secrets = append(s.Spec.Secrets, SecretRef{Name: "s" + strings.Repeat("a", i%5) + string(rune('a'+i%26)) + string(rune('a'+i/26)), Env: "E" + string(rune('A'+i%26)) + string(rune('A'+i/26))})
	}
	errs := s.Validate()
	if !strings.Contains(errs.Error(), "spec.secrets: names 65 secrets, at most 64") {
		t.Errorf("Validate = %v", errs)
	}
}

func mustJSON(t *testing.T, s *Service) []byte {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
