package driver

import (
	"strings"
	"testing"
)

func TestSpecValidate(t *testing.T) {
	t.Parallel()
	ok := Spec{ID: "hello-7f3a9c21-0", Command: "/bin/true", Env: []string{"PATH=/bin", "EMPTY="}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid spec rejected: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(*Spec)
		field string
	}{
		{"empty id", func(s *Spec) { s.ID = "" }, "spec.id"},
		{"upper id", func(s *Spec) { s.ID = "Hello" }, "spec.id"},
		{"slash id", func(s *Spec) { s.ID = "a/b" }, "spec.id"},
		{"dot id", func(s *Spec) { s.ID = ".." }, "spec.id"},
		{"leading dash", func(s *Spec) { s.ID = "-a" }, "spec.id"},
		{"long id", func(s *Spec) { s.ID = strings.Repeat("a", MaxIDLen+1) }, "spec.id"},
		{"no command", func(s *Spec) { s.Command = "" }, "spec.command"},
		{"nul command", func(s *Spec) { s.Command = "a\x00b" }, "spec.command"},
		{"nul arg", func(s *Spec) { s.Args = []string{"ok", "a\x00"} }, "spec.args[1]"},
		{"env without =", func(s *Spec) { s.Env = []string{"PATH"} }, "spec.env[0]"},
		{"env empty key", func(s *Spec) { s.Env = []string{"=x"} }, "spec.env[0]"},
		{"negative cpu", func(s *Spec) { s.CPU = -1 }, "spec.cpu"},
		{"negative memory", func(s *Spec) { s.Memory = -1 }, "spec.memory"},
		{"negative log bytes", func(s *Spec) { s.LogMaxBytes = -5 }, "spec.logMaxBytes"},
		{"bad log files", func(s *Spec) { s.LogMaxFiles = -2 }, "spec.logMaxFiles"},
		{"empty meta key", func(s *Spec) { s.Meta = map[string]string{"": "x"} }, "spec.meta"},
	}
	for _, tc := range tests {
		s := ok
		tc.edit(&s)
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: Validate() = %v, want an error naming %s", tc.name, err, tc.field)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	s := Spec{}.WithDefaults()
	if s.LogMaxBytes != DefaultLogMaxBytes || s.LogMaxFiles != DefaultLogMaxFiles {
		t.Errorf("defaults = %d, %d", s.LogMaxBytes, s.LogMaxFiles)
	}
	s = Spec{LogMaxBytes: 10, LogMaxFiles: NoRotatedLogs}.WithDefaults()
	if s.LogMaxBytes != 10 || s.LogMaxFiles != NoRotatedLogs {
		t.Errorf("explicit values changed: %d, %d", s.LogMaxBytes, s.LogMaxFiles)
	}
}
