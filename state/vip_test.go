package state

import (
	"net/netip"
	"testing"

	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
)

// TestServiceVIP checks that a service gets a stable address of VIPPrefix at creation,
// keeps it through new revisions, that two services never share one, and that a deleted
// service's address is free again.
func TestServiceVIP(t *testing.T) {
	f := newFixture(t)
	named := func(name string, replicas int) *manifest.Service {
		s := hello(replicas)
		s.Metadata.Name = name
		return s
	}
	vipOf := func(name string) netip.Addr {
		t.Helper()
		svc, ok, err := f.st.Service(name)
		if err != nil || !ok {
			t.Fatalf("service %s: %v %v", name, ok, err)
		}
		a, err := netip.ParseAddr(svc.VIP)
		if err != nil || !VIPPrefix.Contains(a) {
			t.Fatalf("service %s has address %q, want one in %s", name, svc.VIP, VIPPrefix)
		}
		return a
	}
	f.apply(f.tx(f.op, ledger.TxServiceApply, ledger.ServiceApply{Service: named("web", 1)}))
	web := vipOf("web")
	f.apply(f.tx(f.op, ledger.TxServiceApply, ledger.ServiceApply{Service: named("web", 2)}))
	if got := vipOf("web"); got != web {
		t.Fatalf("a new revision moved web from %s to %s", web, got)
	}
	f.apply(f.tx(f.op, ledger.TxServiceApply, ledger.ServiceApply{Service: named("db", 1)}))
	if vipOf("db") == web {
		t.Fatalf("db and web share %s", web)
	}
	f.apply(f.tx(f.op, ledger.TxServiceDelete, ledger.ServiceDelete{Name: "web"}))
	// The same name hashes to the same free address again.
	f.apply(f.tx(f.op, ledger.TxServiceApply, ledger.ServiceApply{Service: named("web", 1)}))
	if got := vipOf("web"); got != web {
		t.Fatalf("re-created web got %s, want its freed address %s", got, web)
	}
}
