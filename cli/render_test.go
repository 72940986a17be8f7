package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/examples"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/state"
)

// now is the fixed clock of the rendering tests.
var now = time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)

func helloSpec(t *testing.T) *manifest.Service {
	t.Helper()
	svcs, err := manifest.Decode("hello.yaml", examples.Hello)
	if err != nil {
		t.Fatal(err)
	}
	return svcs[0]
}

func fixedDepots() []api.Depot {
	exit1 := 1
	return []api.Depot{
		{ID: "hello-1a2b3c4d", Service: "hello", Revision: 2, Node: "0123456789abcdef", NodeName: "laptop",
			Created: now.Add(-5*time.Minute - 12*time.Second),
			Status: ledger.DepotStatus{ID: "hello-1a2b3c4d", State: ledger.DepotReady, Ready: true, PID: 4242,
				Restarts: 0, Since: now.Add(-5 * time.Minute), Limits: "cgroup v2: cpu.max, memory.max"},
			Addrs: map[string]string{"http": "127.0.0.1:20001"}},
		{ID: "hello-5e6f7a8b", Service: "hello", Revision: 2, Node: "0123456789abcdef",
			Created: now.Add(-3 * time.Hour),
			Status: ledger.DepotStatus{ID: "hello-5e6f7a8b", State: ledger.DepotExited, Restarts: 7, ExitCode: &exit1,
				Reason: "exited with code 1:\nbind: address in use", Since: now.Add(-40 * time.Second),
				Limits: "cgroup v2: cpu.max, memory.max"},
			Addrs: map[string]string{"http": "127.0.0.1:20002", "admin": "127.0.0.1:20003"}},
		{ID: "web-00000000", Service: "web", Revision: 11, Node: "fedcba9876543210", NodeName: "rack-2-node-17",
			Created: now.Add(-50 * time.Hour)},
	}
}

func TestServicesTable(t *testing.T) {
	t.Parallel()
	svcs := []api.Service{
		{Name: "hello", Revision: 2, Desired: 3, Placed: 3, Running: 3, Ready: 2, Created: now.Add(-90 * time.Second)},
		{Name: "a-much-longer-service-name", Revision: 117, Desired: 10, Placed: 4, Ready: 0, Created: now.Add(-9 * 24 * time.Hour)},
		{Name: "idle", Revision: 1},
	}
	var b bytes.Buffer
	if err := writeServices(&b, svcs, now); err != nil {
		t.Fatal(err)
	}
	golden(t, "services.golden", b.String())
}

func TestDepotsTable(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := writeDepots(&b, fixedDepots(), now); err != nil {
		t.Fatal(err)
	}
	golden(t, "depots.golden", b.String())
}

func TestNodesTable(t *testing.T) {
	t.Parallel()
	ns := []api.Node{
		{ID: "0123456789abcdef", Name: "laptop", Addr: "127.0.0.1:7700", OS: "linux", Arch: "amd64", CPU: 8000,
			Memory: 16 << 30, CPUUsed: 300, MemUsed: 96 << 20, Depots: 3, Validator: true, Leader: true, Alive: true},
		{ID: "fedcba9876543210", Name: "rack-2-node-17", OS: "linux", Arch: "arm64", CPU: 2500,
			Memory: 8231878656, Depots: 0},
	}
	var b bytes.Buffer
	if err := writeNodes(&b, ns); err != nil {
		t.Fatal(err)
	}
	golden(t, "nodes.golden", b.String())
}

func TestDescribeService(t *testing.T) {
	t.Parallel()
	spec := helloSpec(t)
	spec.Spec.Env = map[string]string{"LOG_LEVEL": "debug", "GREETING": "hi there"}
	spec.Metadata.Labels = map[string]string{"team": "core"}
	old := *spec
	old.Spec.Replicas = 1
	ds := fixedDepots()[:2]
	d := &api.ServiceDetail{
		Service: api.Service{Name: "hello", Revision: 2, AppliedBy: "alice", Created: now.Add(-2 * time.Hour),
			Updated: now.Add(-6 * time.Minute), Desired: 3, Placed: 2, Running: 1, Ready: 1, Spec: spec,
			Unschedulable: "1 replica: no node has 32Mi of memory free", Depots: ds},
		Revisions: []state.Revision{
			{Service: "hello", Revision: 1, Spec: &old, AppliedBy: "alice", TxID: ledger.Hash{0xab, 0xcd}, Height: 3, At: now.Add(-2 * time.Hour)},
			{Service: "hello", Revision: 2, Spec: spec, AppliedBy: "alice", TxID: ledger.Hash{0x12, 0x34}, Height: 17, At: now.Add(-6 * time.Minute)},
		},
		Events: []state.Event{
			{Time: now.Add(-6 * time.Minute), Height: 17, Kind: "service.applied", Service: "hello", Message: "revision 2 of hello applied by alice"},
			{Time: now.Add(-40 * time.Second), Height: 21, Kind: "depot.exited", Service: "hello", Depot: "hello-5e6f7a8b", Message: "depot hello-5e6f7a8b exited with code 1"},
		},
	}
	var b bytes.Buffer
	if err := writeServiceDetail(&b, d, now); err != nil {
		t.Fatal(err)
	}
	golden(t, "describe-service.golden", b.String())

	// A service with nothing yet: every section still says so.
	b.Reset()
	if err := writeServiceDetail(&b, &api.ServiceDetail{Service: api.Service{Name: "empty", Revision: 1, Spec: helloSpec(t)}}, now); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(b.String(), "<none>"); got != 3 {
		t.Errorf("empty service: %d <none> sections, want 3 (revisions, depots, events):\n%s", got, b.String())
	}
}

func TestLedgerBlocks(t *testing.T) {
	t.Parallel()
	blocks := []api.BlockSummary{
		{Height: 0, Hash: strings.Repeat("a1", 32), Time: now.Add(-time.Hour), Proposer: "0123456789abcdef",
			Txs: []api.TxSummary{{ID: strings.Repeat("0f", 32), Type: "network.genesis", By: "alice", Summary: `network "dev" with 1 node`}}},
		{Height: 1, Hash: strings.Repeat("b2", 32), Prev: strings.Repeat("a1", 32), Time: now, Proposer: "0123456789abcdef",
			Txs: []api.TxSummary{
				{ID: strings.Repeat("1e", 32), Type: "service.apply", By: "alice", Summary: "hello revision 1"},
				{ID: strings.Repeat("2d", 32), Type: "service.delete", By: "bob", Summary: "web", Error: "service web does not exist"},
			}},
		{Height: 2, Hash: strings.Repeat("c3", 32), Time: now},
	}
	var b bytes.Buffer
	if err := writeBlocks(&b, blocks); err != nil {
		t.Fatal(err)
	}
	golden(t, "ledger-show.golden", b.String())
}

func TestEventFormats(t *testing.T) {
	t.Parallel()
	e := state.Event{Time: now, Height: 9, Kind: "depot.ready", Service: "hello", Depot: "hello-1a2b3c4d", Message: "depot hello-1a2b3c4d is ready"}
	var b bytes.Buffer
	for _, f := range []string{formatTable, formatJSON, formatYAML} {
		if err := writeEvent(&b, f, e); err != nil {
			t.Fatal(err)
		}
	}
	golden(t, "events.golden", b.String())
}

func TestWriteDocFormats(t *testing.T) {
	t.Parallel()
	svc := api.Service{Name: "hello", Revision: 2, Desired: 3, Ready: 3, Spec: helloSpec(t), Created: now}
	var j, y bytes.Buffer
	if err := writeDoc(&j, formatJSON, svc); err != nil {
		t.Fatal(err)
	}
	if err := writeDoc(&y, formatYAML, svc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(j.String(), "{\n  \"name\": \"hello\",") {
		t.Errorf("JSON is not indented with the API's field names:\n%s", j.String())
	}
	// Both decode to the same document, and YAML keeps the API's field order.
	var fromJSON, fromYAML api.Service
	if err := json.Unmarshal(j.Bytes(), &fromJSON); err != nil {
		t.Fatal(err)
	}
	jy, err := yaml.YAMLToJSON(y.Bytes())
	if err != nil {
		t.Fatalf("YAML output does not parse: %v\n%s", err, y.String())
	}
	if err := json.Unmarshal(jy, &fromYAML); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(fromJSON)
	c, _ := json.Marshal(fromYAML)
	if !bytes.Equal(a, c) {
		t.Errorf("JSON and YAML outputs differ:\n%s\n%s", a, c)
	}
	if !strings.HasPrefix(y.String(), "name: hello\nrevision: 2\n") {
		t.Errorf("YAML does not keep the API's field order:\n%s", y.String())
	}
}

func TestHumanUnits(t *testing.T) {
	t.Parallel()
	ages := map[time.Duration]string{
		0: "0s", 45 * time.Second: "45s", 119 * time.Second: "119s", 5*time.Minute + 12*time.Second: "5m12s",
		10 * time.Minute: "10m", 150 * time.Minute: "150m", 3 * time.Hour: "3h", 5*time.Hour + 30*time.Minute: "5h30m",
		30 * time.Hour: "30h", 50 * time.Hour: "2d2h", 72 * time.Hour: "3d", 12 * 24 * time.Hour: "12d",
		-time.Minute: "0s",
	}
	for d, want := range ages {
		if got := age(now.Add(-d), now); got != want {
			t.Errorf("age(%v) = %q, want %q", d, got, want)
		}
	}
	if got := age(time.Time{}, now); got != "-" {
		t.Errorf("age(zero) = %q", got)
	}
	mems := map[int64]string{0: "0", 1000: "1000", 1024: "1Ki", 64 << 20: "64Mi", 8231878656: "7.7Gi", 3 << 40: "3Ti"}
	for b, want := range mems {
		if got := memory(b); got != want {
			t.Errorf("memory(%d) = %q, want %q", b, got, want)
		}
	}
	if got := cpu(2500); got != "2500m" {
		t.Errorf("cpu(2500) = %q", got)
	}
	if got := serverURL("0.0.0.0:7700"); got != "https://127.0.0.1:7700" {
		t.Errorf("serverURL = %q", got)
	}
	if got := serverURL("[::1]:7700"); got != "https://[::1]:7700" {
		t.Errorf("serverURL = %q", got)
	}
}
