package driver

import (
	"strings"
	"testing"
)

func TestSpecValidate(t *testing.T) {
	t.Parallel()
	ok := Spec{ID: "hello-7f3a9c21-0", Command: "/bin/true", Env: []string{"PATH=/bin", "EMPTY="},
		Mounts: []Mount{{Source: "/var/lib/qnet/configs/a", Target: "/etc/a.conf", ReadOnly: true}, {Source: "/srv", Target: "/srv"}}}
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
		{"relative mount source", func(s *Spec) { s.Mounts = []Mount{{Source: "etc/a", Target: "/a"}} }, "spec.mounts[0].source"},
		{"empty mount target", func(s *Spec) { s.Mounts = []Mount{{Source: "/etc/a"}} }, "spec.mounts[0].target"},
		{"dotdot mount target", func(s *Spec) { s.Mounts = []Mount{{Source: "/etc/a", Target: "/x/../etc/passwd"}} }, "spec.mounts[0].target"},
		{"unclean mount source", func(s *Spec) { s.Mounts = []Mount{{Source: "/etc//a", Target: "/a"}} }, "spec.mounts[0].source"},
		{"root mount target", func(s *Spec) { s.Mounts = []Mount{{Source: "/etc", Target: "/"}} }, "spec.mounts[0].target"},
		{"twice the same target", func(s *Spec) { s.Mounts = []Mount{{Source: "/a", Target: "/t"}, {Source: "/b", Target: "/t"}} }, "spec.mounts[1].target"},
		{"nul mount target", func(s *Spec) { s.Mounts = []Mount{{Source: "/a", Target: "/t\x00"}} }, "spec.mounts[0].target"},
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

// TestEnvErrorHidesValue checks that a bad environment entry is reported by its
// variable's name alone: the value may be a secret.
func TestEnvErrorHidesValue(t *testing.T) {
	t.Parallel()
	err := Spec{ID: "a", Command: "/bin/true", Env: []string{"TOKEN=s3cr3t\x00"}}.Validate()
	if err == nil || !strings.Contains(err.Error(), "TOKEN") || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("Validate() = %v, want an error naming TOKEN without its value", err)
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
