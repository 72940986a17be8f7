package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFlagValidation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data") // never created: validation fails first
	tests := []struct {
		name string
		args []string
		want []string // substrings of stderr
	}{
		{"agent without data dir", []string{"agent"}, []string{"--data-dir is required"}},
		{"agent bad cpu", []string{"agent", "--data-dir", data, "--cpu", "2x"},
			[]string{`invalid argument "2x" for "--cpu" flag`, "250m"}},
		{"agent zero cpu", []string{"agent", "--data-dir", data, "--cpu", "0"},
			[]string{`"--cpu" flag`, "more than zero"}},
		{"agent bad memory unit", []string{"agent", "--data-dir", data, "--memory", "4GB"},
			[]string{`invalid argument "4GB" for "--memory" flag`, "Ki, Mi, Gi"}},
		{"agent negative memory", []string{"agent", "--data-dir", data, "--memory", "-1Gi"},
			[]string{`"--memory" flag`, "more than zero"}},
		{"agent bad address", []string{"agent", "--data-dir", data, "--api-addr", "localhost"},
			[]string{`invalid argument "localhost" for "--api-addr" flag`, "host:port"}},
		{"agent bad port", []string{"agent", "--data-dir", data, "--api-addr", "127.0.0.1:99999"},
			[]string{`"--api-addr" flag`, "0 to 65535"}},
		{"agent extra argument", []string{"agent", "--data-dir", data, "now"}, []string{"takes no arguments"}},
		{"init without network", []string{"init", "--data-dir", data}, []string{"--network is required"}},
		{"init without data dir", []string{"init", "--network", "home"}, []string{"--data-dir is required"}},
		{"dev bad timeout", []string{"dev", "--timeout", "0s"}, []string{"--timeout", "positive duration"}},
		{"unknown flag", []string{"get", "services", "--colour"}, []string{"unknown flag: --colour"}},
		{"bad output", []string{"get", "services", "-o", "xml"},
			[]string{`invalid argument "xml" for "-o, --output" flag: want one of table, json, yaml`}},
		{"bad describe output", []string{"describe", "service", "hello", "-o", "table"},
			[]string{`"-o, --output" flag: want one of text, json, yaml`}},
		{"bad version output", []string{"version", "-o", "xml"}, []string{"want one of text, json, yaml"}},
		{"logs bad tail", []string{"logs", "hello", "--tail", "-2"}, []string{"--tail", "-1 for all"}},
		{"logs bad stream", []string{"logs", "hello", "--stream", "stdin"},
			[]string{`"--stream" flag: want one of all, stdout, stderr`}},
		{"logs without service", []string{"logs"}, []string{"wants SERVICE, got 0"}},
		{"ledger limit", []string{"ledger", "show", "--limit", "0"}, []string{"--limit", "from 1 to 1000"}},
		{"ledger from", []string{"ledger", "show", "--from", "-3"}, []string{`"--from" flag`}},
		{"apply without file", []string{"apply"}, []string{"-f/--filename is required"}},
		{"apply bad timeout", []string{"apply", "-f", "x.yaml", "--timeout", "-1s"}, []string{"--timeout", "positive duration"}},
		{"describe two names", []string{"describe", "service", "a", "b"}, []string{"wants NAME, got 2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"--config", filepath.Join(dir, "config.yaml")}, tc.args...)
			code, out, errOut := run(t, args...)
			if code != 1 {
				t.Errorf("exit %d, want 1; stdout %q, stderr %q", code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if !strings.HasPrefix(errOut, "Error: ") || strings.Count(errOut, "Error:") != 1 {
				t.Errorf("want one leading Error: line, got:\n%s", errOut)
			}
			// A mistake in the command line shows how to use the command.
			if !strings.Contains(errOut, "Usage:") {
				t.Errorf("stderr shows no usage:\n%s", errOut)
			}
		})
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("a failed validation created the data dir (stat: %v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "config.yaml")); !os.IsNotExist(err) {
		t.Errorf("a failed validation wrote the context file (stat: %v)", err)
	}
}

func TestQuantityFlagsParse(t *testing.T) {
	t.Parallel()
	var c, m int64
	if err := (cpuValue{&c}).Set("1.5"); err != nil || c != 1500 {
		t.Errorf("--cpu 1.5 = %d, %v; want 1500", c, err)
	}
	if err := (cpuValue{&c}).Set("2000m"); err != nil || c != 2000 {
		t.Errorf("--cpu 2000m = %d, %v; want 2000", c, err)
	}
	if err := (memoryValue{&m}).Set("4Gi"); err != nil || m != 4<<30 {
		t.Errorf("--memory 4Gi = %d, %v; want %d", m, err, int64(4<<30))
	}
	for _, ok := range []string{"127.0.0.1:7700", ":7700", "[::1]:0", "0.0.0.0:65535"} {
		if err := checkAddr(ok); err != nil {
			t.Errorf("checkAddr(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "7700", "host:http", "host:-1", "::1:7700"} {
		if err := checkAddr(bad); err == nil {
			t.Errorf("checkAddr(%q) accepted", bad)
		}
	}
}
