package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/client"
	"qnet.dev/qnet/node"
)

func testApp(t *testing.T, config string) (*app, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	return &app{stdout: &out, stderr: &out, configFlag: config, now: time.Now}, &out
}

func saveConfig(t *testing.T, path string, current string, ctxs map[string]*client.Context) {
	t.Helper()
	cfg := &client.Config{Current: current, Contexts: ctxs}
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}
}

func loadConfig(t *testing.T, path string) *client.Config {
	t.Helper()
	cfg, err := client.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestDevContextIsUndone(t *testing.T) {
	t.Parallel()
	devCtx := &client.Context{Server: "https://127.0.0.1:7700", Token: "new", Network: "dev"}
	oldDev := &client.Context{Server: "https://127.0.0.1:9999", Token: "old", Network: "dev"}
	home := &client.Context{Server: "https://10.0.0.1:7700", Token: "h"}

	tests := []struct {
		name        string
		current     string
		before      map[string]*client.Context
		switchTo    string // what the user selects while dev runs ("" for nothing)
		wantCurrent string
		wantDev     *client.Context
	}{
		{"no file before", "", nil, "", "", nil},
		{"other context current", "home", map[string]*client.Context{"home": home}, "", "home", nil},
		{"dev existed", "home", map[string]*client.Context{"home": home, "dev": oldDev}, "", "home", oldDev},
		{"dev existed and was current", "dev", map[string]*client.Context{"home": home, "dev": oldDev}, "", "dev", oldDev},
		{"user switched meanwhile", "", map[string]*client.Context{"home": home}, "home", "home", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "config.yaml")
			if tc.before != nil {
				saveConfig(t, path, tc.current, tc.before)
			}
			a, _ := testApp(t, path)
			undo, err := a.selectDevContext(devCtx)
			if err != nil {
				t.Fatal(err)
			}
			during := loadConfig(t, path)
			if during.Current != devContext || during.Contexts[devContext].Token != "new" {
				t.Fatalf("while dev runs: %+v", during)
			}
			if tc.switchTo != "" {
				during.Current = tc.switchTo
				if err := during.Save(path); err != nil {
					t.Fatal(err)
				}
			}
			if err := undo(); err != nil {
				t.Fatal(err)
			}
			after := loadConfig(t, path)
			if after.Current != tc.wantCurrent {
				t.Errorf("current = %q, want %q", after.Current, tc.wantCurrent)
			}
			got := after.Contexts[devContext]
			switch {
			case tc.wantDev == nil && got != nil:
				t.Errorf("the dev context is left behind: %+v", got)
			case tc.wantDev != nil && (got == nil || *got != *tc.wantDev):
				t.Errorf("dev context = %+v, want the previous %+v", got, tc.wantDev)
			}
			if tc.before["home"] != nil && (after.Contexts["home"] == nil || *after.Contexts["home"] != *home) {
				t.Errorf("another context was touched: %+v", after.Contexts["home"])
			}
		})
	}
}

func TestFindDevContext(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(t.TempDir(), "config.yaml")
	a, _ := testApp(t, path)

	// Nothing knows the token: the error says what to do.
	_, err := a.findDevContext(dir)
	if err == nil || !strings.Contains(err.Error(), "holds a network") || !strings.Contains(err.Error(), "qnet agent --data-dir") {
		t.Errorf("err = %v", err)
	}

	// A context that qnet init wrote, with the operator key in dir.
	initCtx := &client.Context{Server: "https://127.0.0.1:7711", Token: "from-init", OperatorKey: filepath.Join(dir, node.OperatorKeyFile)}
	saveConfig(t, path, "lab", map[string]*client.Context{"lab": initCtx, "other": {Token: "x", OperatorKey: "/elsewhere/operator.key"}})
	c, err := a.findDevContext(dir)
	if err != nil || c.Token != "from-init" {
		t.Errorf("found %+v, %v; want the init context", c, err)
	}

	// The context qnet dev kept in dir comes first.
	kept := &client.Config{Contexts: map[string]*client.Context{}}
	kept.Set(devContext, &client.Context{Token: "kept"})
	if err := kept.Save(filepath.Join(dir, devContextFile)); err != nil {
		t.Fatal(err)
	}
	c, err = a.findDevContext(dir)
	if err != nil || c.Token != "kept" {
		t.Errorf("found %+v, %v; want the kept context", c, err)
	}
}

func TestDevBadManifestStartsNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := writeFile(t, dir, "web.yaml", badManifest)
	data := filepath.Join(dir, "data")
	config := filepath.Join(dir, "config.yaml")
	code, _, errOut := run(t, "--config", config, "dev", "-f", bad, "--data-dir", data)
	if code != 1 || !strings.Contains(errOut, "spec.replicas") || !strings.Contains(errOut, "nothing was applied") {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
	for _, p := range []string{data, config} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s was created although the manifest is bad (stat: %v)", p, err)
		}
	}
}

func FuzzFlagValues(f *testing.F) {
	for _, s := range []string{"250m", "2", "0.5", "1.5Gi", "4Gi", "0", "-1", "1e3", "127.0.0.1:7700", ":0",
		"[::1]:65535", "host:", "::", "9999999999999999999m", "1.0001", "64Mi", "Gi"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var c, m int64
		if err := (cpuValue{&c}).Set(s); err == nil {
			if c <= 0 {
				t.Fatalf("--cpu %q accepted as %d", s, c)
			}
			var again int64
			if err := (cpuValue{&again}).Set((cpuValue{&c}).String()); err != nil || again != c {
				t.Fatalf("--cpu %q: %d does not round-trip through %q", s, c, (cpuValue{&c}).String())
			}
		}
		if err := (memoryValue{&m}).Set(s); err == nil {
			if m <= 0 {
				t.Fatalf("--memory %q accepted as %d", s, m)
			}
			var again int64
			if err := (memoryValue{&again}).Set((memoryValue{&m}).String()); err != nil || again != m {
				t.Fatalf("--memory %q: %d does not round-trip", s, m)
			}
		}
		_ = checkAddr(s)
		_ = oneLine(s)
		if strings.ContainsAny(oneLine(s), "\r\n\t") {
			t.Fatalf("oneLine(%q) keeps a line break or tab", s)
		}
	})
}
