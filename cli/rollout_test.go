package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/examples"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/state"
)

func TestRolloutFlagValidation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"status without service", []string{"rollout", "status"}, []string{"wants SERVICE, got 0"}},
		{"history two services", []string{"rollout", "history", "a", "b"}, []string{"wants SERVICE, got 2"}},
		{"status bad output", []string{"rollout", "status", "web", "-o", "xml"}, []string{"want one of table, json, yaml"}},
		{"undo revision 0", []string{"rollout", "undo", "web", "--to-revision", "0"}, []string{"--to-revision", "numbered from 1", "qnet rollout history web"}},
		{"undo negative revision", []string{"rollout", "undo", "web", "--to-revision", "-2"}, []string{`invalid argument "-2" for "--to-revision" flag`}},
		{"undo bad timeout", []string{"rollout", "undo", "web", "--timeout", "0s"}, []string{"--timeout", "positive duration"}},
		{"pause without service", []string{"rollout", "pause"}, []string{"wants SERVICE, got 0"}},
		{"resume two services", []string{"rollout", "resume", "a", "b"}, []string{"wants SERVICE, got 2"}},
		{"diff without file", []string{"diff"}, []string{"-f/--filename is required"}},
		{"diff with an argument", []string{"diff", "-f", "x.yaml", "extra"}, []string{"takes no arguments"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := run(t, append([]string{"--config", filepath.Join(dir, "config.yaml")}, tc.args...)...)
			if code != 1 {
				t.Errorf("exit %d, want 1; stdout %q, stderr %q", code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if !strings.Contains(errOut, "Usage:") {
				t.Errorf("stderr shows no usage:\n%s", errOut)
			}
		})
	}
}

// withRevisions gives the fake node's hello two revisions, rolled out to the second.
func withRevisions(f *fakeNode) {
	f.detail.Revision = 2
	spec := f.detail.Spec
	f.detail.Revisions = []state.Revision{
		{Service: "hello", Revision: 1, Spec: spec, AppliedBy: "alice", At: time.Now().Add(-time.Hour), Height: 4},
		{Service: "hello", Revision: 2, Spec: spec, AppliedBy: "bob", At: time.Now().Add(-time.Minute), Height: 9, Cause: "undo to revision 1"},
	}
	f.detail.Rollout = &state.Rollout{Applied: 2, Revision: 2, Stable: 2, Phase: ledger.RolloutComplete, Since: time.Now().Add(-time.Minute)}
}

func TestRolloutUndoAgainstNode(t *testing.T) {
	t.Parallel()
	f := newFakeNode(t)
	withRevisions(f)
	code, out, errOut := f.run("rollout", "undo", "hello", "--to-revision", "7")
	if code != 1 || !strings.Contains(errOut, "service hello has no revision 7; its revisions are 1, 2") {
		t.Fatalf("undo to a missing revision: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := f.run("rollout", "undo", "nosuch"); code != 1 || !strings.Contains(errOut, `service "nosuch" not found`) {
		t.Fatalf("undo of a missing service: exit %d\n%s%s", code, out, errOut)
	}
	f.mu.Lock()
	if len(f.txs) != 0 {
		t.Fatalf("a refused undo sent %d transactions", len(f.txs))
	}
	f.mu.Unlock()
	code, out, errOut = f.run("rollout", "undo", "hello")
	if code != 0 || !strings.Contains(out, "service/hello rolled back to revision 1") {
		t.Fatalf("undo: exit %d\n%s%s", code, out, errOut)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.txs) != 1 || f.txs[0].Type != ledger.TxServiceApply {
		t.Fatalf("undo sent %+v, want one service.apply", f.txs)
	}
	var p ledger.ServiceApply
	if err := f.txs[0].Decode(&p); err != nil || p.Cause != "undo to revision 1" || p.Service.Metadata.Name != "hello" {
		t.Fatalf("undo payload %+v, %v", p, err)
	}
}

func TestRolloutPauseAgainstNode(t *testing.T) {
	t.Parallel()
	f := newFakeNode(t)
	code, out, errOut := f.run("rollout", "pause", "hello", "--reason", "look at the canary")
	if code != 0 || !strings.Contains(out, "service/hello rollout paused") {
		t.Fatalf("pause: exit %d\n%s%s", code, out, errOut)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var p ledger.RolloutControl
	if len(f.txs) != 1 || f.txs[0].Type != ledger.TxRolloutPause || f.txs[0].Decode(&p) != nil || p.Reason != "look at the canary" {
		t.Fatalf("pause sent %+v", f.txs)
	}
}

func TestRolloutStatusAndHistory(t *testing.T) {
	t.Parallel()
	d := &api.ServiceDetail{Service: api.Service{Name: "web", Revision: 3, Desired: 3, Placed: 1, Ready: 3}}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	d.Rollout = &state.Rollout{Applied: 3, Revision: 3, Stable: 2, Phase: ledger.RolloutProgressing, Since: now.Add(-90 * time.Second),
		Message: "revision 3 replaces revision 2"}
	for i, rev := range []uint64{2, 3, 2, 2} {
		d.Depots = append(d.Depots, api.Depot{ID: "web-" + string(rune('a'+i)), Revision: rev, Status: ledger.DepotStatus{Ready: rev == 2}})
	}
	var b bytes.Buffer
	if err := writeRolloutStatus(&b, d, now); err != nil {
		t.Fatal(err)
	}
	want := `service/web: rollout of revision 3 progressing (since 90s ago)
  stable:   revision 2
  replicas: 3 desired, 1 up-to-date, 3 ready
  message:  revision 3 replaces revision 2
REVISION   DEPOTS   READY   ROLE
3          1        0       target
2          3        3       stable (old)
`
	if got := b.String(); got != want {
		t.Errorf("status:\n%s\nwant:\n%s", got, want)
	}
	d.Revisions = []state.Revision{
		{Revision: 1, AppliedBy: "alice", At: now.Add(-2 * time.Hour), Height: 3},
		{Revision: 2, AppliedBy: "alice", At: now.Add(-time.Hour), Height: 8},
		{Revision: 3, AppliedBy: "bob", At: now.Add(-90 * time.Second), Height: 20, Cause: "undo to revision 1"},
	}
	b.Reset()
	if err := writeHistory(&b, d, now); err != nil {
		t.Fatal(err)
	}
	want = `REVISION   APPLIED-BY   AGE    BLOCK   STATUS        CAUSE
1          alice        120m   3       -             -
2          alice        60m    8       stable        -
3          bob          90s    20      progressing   undo to revision 1
`
	if got := b.String(); got != want {
		t.Errorf("history:\n%s\nwant:\n%s", got, want)
	}
}

func TestApplyWaitFailsOnRevert(t *testing.T) {
	t.Parallel()
	f := newFakeNode(t)
	f.detail.Rollout = &state.Rollout{Applied: 1, Revision: 0, Phase: ledger.RolloutFailed, Since: time.Now(),
		Message: "no new replica became ready for 5m0s"}
	file := writeFile(t, t.TempDir(), "hello.yaml", string(examples.Hello))
	code, out, errOut := f.run("apply", "-f", file, "--wait", "--timeout", "30s")
	if code != 1 || !strings.Contains(errOut, "rollout failed: revision 1 of hello: no new replica became ready for 5m0s") {
		t.Fatalf("apply --wait of a failed rollout: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "rollout: revision 1 failed") {
		t.Errorf("progress lacks the rollout phase:\n%s", out)
	}
}

func TestUnifiedDiff(t *testing.T) {
	t.Parallel()
	a := strings.Split("a\nb\nc\nd\ne\nf\ng\nh\ni\nj", "\n")
	b := strings.Split("a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nk", "\n")
	// Six unchanged lines between two changes: one hunk, as GNU diff makes it.
	want := `--- old
+++ new
@@ -1,10 +1,11 @@
 a
 b
 c
-d
+D
 e
 f
 g
 h
 i
 j
+k
`
	if got := unifiedDiff("old", "new", a, b, 3); got != want {
		t.Errorf("diff:\n%s\nwant:\n%s", got, want)
	}
	if got := unifiedDiff("old", "new", a, b, 2); strings.Count(got, "@@ -") != 2 || !strings.Contains(got, "@@ -9,2 +9,3 @@\n i\n j\n+k\n") {
		t.Errorf("diff with 2 lines of context, two hunks:\n%s", got)
	}
	if got := unifiedDiff("old", "new", a, a, 3); got != "" {
		t.Errorf("diff of equal lines: %q", got)
	}
	if got := unifiedDiff("/dev/null", "new", nil, []string{"x"}, 3); got != "--- /dev/null\n+++ new\n@@ -0,0 +1 @@\n+x\n" {
		t.Errorf("diff of a new file: %q", got)
	}
}

func TestDiffAgainstNode(t *testing.T) {
	t.Parallel()
	f := newFakeNode(t)
	dir := t.TempDir()
	same := writeFile(t, dir, "hello.yaml", string(examples.Hello))
	code, out, errOut := f.run("diff", "-f", same)
	if code != 0 || !strings.Contains(out, "service/hello unchanged (revision 1)") {
		t.Fatalf("diff of the same manifest: exit %d\n%s%s", code, out, errOut)
	}
	changed := writeFile(t, t.TempDir(), "hello.yaml", strings.Replace(string(examples.Hello), "replicas: 3", "replicas: 5", 1))
	code, out, errOut = f.run("diff", "-f", changed)
	if code != 0 || !strings.Contains(out, "--- service/hello (revision 1)\n+++ service/hello (manifest)\n") ||
		!strings.Contains(out, "-  replicas: 3\n+  replicas: 5\n") {
		t.Fatalf("diff of a changed manifest: exit %d\n%s%s", code, out, errOut)
	}
	other := writeFile(t, t.TempDir(), "other.yaml", strings.Replace(string(examples.Hello), "name: hello", "name: other", 1))
	code, out, errOut = f.run("diff", "-f", other)
	if code != 0 || !strings.Contains(out, "--- /dev/null\n") || !strings.Contains(out, "+  name: other\n") {
		t.Fatalf("diff of a new service: exit %d\n%s%s", code, out, errOut)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.txs) != 0 {
		t.Errorf("diff sent %d transactions", len(f.txs))
	}
}
