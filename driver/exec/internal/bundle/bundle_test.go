package bundle

import (
	"testing"

	"qnet.dev/qnet/driver"
)

func TestRedacted(t *testing.T) {
	t.Parallel()
	l := Launch{Spec: driver.Spec{ID: "a", Command: "x", Env: []string{"SECRET=1"}}}
	if r := l.Redacted(); r.Spec.Env != nil || r.Spec.ID != "a" {
		t.Errorf("Redacted = %+v", r)
	}
	if l.Spec.Env == nil {
		t.Error("Redacted changed its receiver's spec")
	}
}
