package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestMain(m *testing.M) {
	// Tables show local times; one zone for every run keeps the golden files stable.
	time.Local = time.UTC
	os.Exit(m.Run())
}

// run runs qnet with args in-process and returns its exit code and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Execute(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to make it): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got:\n%s\n--- want:\n%s", name, got, want)
	}
}

// walk calls fn for every command of the tree under c.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walk(sub, fn)
	}
}

func TestEveryCommandIsDocumented(t *testing.T) {
	t.Parallel()
	root := NewRoot(&bytes.Buffer{}, &bytes.Buffer{})
	n := 0
	walk(root, func(c *cobra.Command) {
		n++
		if strings.TrimSpace(c.Short) == "" {
			t.Errorf("%q has no Short", c.CommandPath())
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no Example", c.CommandPath())
		}
		if !strings.HasPrefix(c.Example, "  ") {
			t.Errorf("%q: Example should be indented by two spaces as cobra prints it under Examples:", c.CommandPath())
		}
		if c.HasSubCommands() && c.RunE == nil && c != root {
			t.Errorf("%q holds subcommands but has no RunE to reject unknown ones", c.CommandPath())
		}
		if !c.HasSubCommands() && c.RunE == nil && c.Run == nil && c != root {
			t.Errorf("%q does nothing", c.CommandPath())
		}
	})
	// The commands the brief promises, including hidden ones.
	for _, path := range [][]string{
		{"init"}, {"agent"}, {"dev"}, {"apply"}, {"get", "services"}, {"get", "svc"}, {"get", "depots"},
		{"get", "depot"}, {"get", "nodes"}, {"get", "node"}, {"describe", "service"}, {"logs"},
		{"delete", "service"}, {"manifest", "validate"}, {"manifest", "schema"}, {"ledger", "show"},
		{"ledger", "verify"}, {"events"}, {"version"}, {"completion"}, {"context", "list"},
		{"context", "use"}, {"context", "show"}, {"shim"}, {"example-hello"}, {"help"},
	} {
		c, rest, err := root.Find(path)
		if err != nil || len(rest) != 0 || c == root {
			t.Errorf("qnet %s: not found (%v, rest %q)", strings.Join(path, " "), err, rest)
		}
	}
	if n < 25 {
		t.Errorf("walked %d commands; the tree looks incomplete", n)
	}
}

func TestHelpWorksForEveryCommand(t *testing.T) {
	t.Parallel()
	var paths [][]string
	walk(NewRoot(&bytes.Buffer{}, &bytes.Buffer{}), func(c *cobra.Command) {
		if c.Name() == "shim" {
			return // takes its arguments raw, as the exec driver passes them
		}
		paths = append(paths, strings.Fields(c.CommandPath())[1:])
	})
	for _, p := range paths {
		code, out, errOut := run(t, append(p, "--help")...)
		if code != 0 || errOut != "" {
			t.Errorf("qnet %s --help: exit %d, stderr %q", strings.Join(p, " "), code, errOut)
		}
		if !strings.Contains(out, "Usage:") || !strings.Contains(out, "Examples:") {
			t.Errorf("qnet %s --help lacks Usage or Examples:\n%s", strings.Join(p, " "), out)
		}
	}
}

func TestUnknownSubcommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"get", "pods"}, `unknown command "pods" for "qnet get": want one of depots, nodes, services`},
		{[]string{"ledger", "burn"}, `unknown command "burn" for "qnet ledger": want one of show, verify`},
		{[]string{"frobnicate"}, `unknown command "frobnicate" for "qnet"`},
	}
	for _, tc := range tests {
		code, _, errOut := run(t, tc.args...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("qnet %s: exit %d, stderr %q; want 1 and %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
		if strings.Count(errOut, "Error:") != 1 {
			t.Errorf("qnet %s: want exactly one Error: line, got\n%s", strings.Join(tc.args, " "), errOut)
		}
	}
}

func TestGroupWithoutArgsShowsHelp(t *testing.T) {
	t.Parallel()
	code, out, _ := run(t, "get")
	if code != 0 || !strings.Contains(out, "Available Commands:") || !strings.Contains(out, "services") {
		t.Errorf("qnet get: exit %d, stdout\n%s", code, out)
	}
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		code, out, errOut := run(t, "completion", sh)
		if code != 0 || !strings.Contains(out, "qnet") || len(out) < 500 {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", sh, code, len(out), errOut)
		}
	}
	code, _, errOut := run(t, "completion", "tcsh")
	if code != 1 || !strings.Contains(errOut, `invalid argument "tcsh"`) {
		t.Errorf("completion tcsh: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = run(t, "completion")
	if code != 1 || !strings.Contains(errOut, "bash, zsh, fish or powershell") {
		t.Errorf("completion: exit %d, stderr %q", code, errOut)
	}
}
