package examples

import (
	"testing"
	"time"

	"qnet.dev/qnet/manifest"
)

func TestHelloDecodesAndValidates(t *testing.T) {
	t.Parallel()
	svcs, err := manifest.Decode("hello.yaml", Hello)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(svcs) != 1 {
		t.Fatalf("hello.yaml holds %d services, want 1", len(svcs))
	}
	s := svcs[0]
	if errs := s.Validate(); len(errs) > 0 {
		t.Fatalf("Validate: %v", errs)
	}
	sp := s.Spec
	if s.Metadata.Name != "hello" || sp.Replicas != 3 {
		t.Errorf("name/replicas = %s/%d, want hello/3", s.Metadata.Name, sp.Replicas)
	}
	if e := sp.Depot.Exec; e == nil || e.Command != "qnet" || len(e.Args) != 1 || e.Args[0] != "example-hello" {
		t.Errorf("depot = %+v, want exec qnet example-hello", sp.Depot.Exec)
	}
	if sp.Resources.CPU != 100 || sp.Resources.Memory != 32<<20 {
		t.Errorf("resources = %v/%v, want 100m/32Mi", sp.Resources.CPU, sp.Resources.Memory)
	}
	if len(sp.Ports) != 1 || sp.Ports[0].Name != "http" || sp.Ports[0].Port != 8080 {
		t.Errorf("ports = %+v, want [{http 8080}]", sp.Ports)
	}
	for name, p := range map[string]*manifest.Probe{"/healthz": sp.Health.Liveness, "/ready": sp.Health.Readiness} {
		if p == nil || p.HTTP == nil || p.HTTP.Path != name || p.HTTP.Port != "http" || p.Interval != manifest.Duration(time.Second) {
			t.Errorf("probe %s = %+v, want http %s on port http every 1s", name, p, name)
		}
	}
}
