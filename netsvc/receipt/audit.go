package receipt

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"qnet.dev/qnet/identity"
)

// Refusal is a node's record of a flow it refused: one that no manifest allows, or
// that asked for a replica the node does not run.
type Refusal struct {
	// Node is the node that refused.
	Node string `json:"node"`
	Flow string `json:"flow,omitempty"`
	// FromNode, FromService and FromDepot are the caller, as far as known.
	FromNode    string `json:"fromNode,omitempty"`
	FromService string `json:"fromService,omitempty"`
	FromDepot   string `json:"fromDepot,omitempty"`
	// ToService and ToPort are what the caller asked for.
	ToService string    `json:"toService"`
	ToPort    string    `json:"toPort,omitempty"`
	At        time.Time `json:"at"`
	Reason    string    `json:"reason"`
}

// Kind is a kind of audit finding.
type Kind string

// Kinds of findings.
const (
	// KindMismatch: the two ends signed different views of a flow (bytes or hashes
	// one way, or its target or times). One end or the link between them is at fault;
	// the receipts alone cannot say which.
	KindMismatch Kind = "mismatch"
	// KindMissing: one end holds no receipt of a flow the other end holds.
	KindMissing Kind = "missing"
	// KindBadSignature: a node holds a receipt whose signature does not verify, is
	// missing its own signature, or names a node whose key is unknown.
	KindBadSignature Kind = "bad-signature"
	// KindEquivocation: a node signed two different views of the same flow.
	KindEquivocation Kind = "equivocation"
	// KindUncommitted: a node holds a receipt in a batch whose root is not on the
	// ledger, or whose receipts do not give the committed root.
	KindUncommitted Kind = "uncommitted"
	// KindWithheld: a batch is on the ledger but the node's log does not hold it.
	KindWithheld Kind = "withheld"
	// KindStray: a node holds a receipt of a flow it was no end of.
	KindStray Kind = "stray"
)

// Finding is one thing the audit found wrong.
type Finding struct {
	Kind Kind   `json:"kind"`
	Flow string `json:"flow,omitempty"`
	// Batch is the batch's seq for findings about batches.
	Batch uint64 `json:"batch,omitempty"`
	// Nodes are the nodes at fault, sorted. When Determined is false, the fault is
	// with one of them (or the link between them) and the audit cannot tell which.
	Nodes      []string `json:"nodes"`
	Determined bool     `json:"determined"`
	// Link is the direction whose data differs, "FROM->TO" (or "FROM<->TO" for both
	// ways), for mismatches of payload.
	Link   string `json:"link,omitempty"`
	Detail string `json:"detail"`
}

// Input is what an audit looks at.
type Input struct {
	// Keys are the nodes' public keys, from the ledger.
	Keys map[string]identity.PublicKey
	// Nodes are the nodes' logs as they handed them over (Log.Records).
	Nodes map[string]Records
	// Committed are the receipt batches committed on the ledger.
	Committed []Batch
}

// Report is an audit's result.
type Report struct {
	// Flows is how many distinct flows the receipts name; Agreed how many of them
	// both ends hold the same complete receipt of.
	Flows  int `json:"flows"`
	Agreed int `json:"agreed"`
	// Findings are sorted by kind, flow, batch and nodes.
	Findings []Finding `json:"findings"`
	// Refusals are all nodes' refusals, by time.
	Refusals []Refusal `json:"refusals"`
}

// Faulty returns the nodes named as certainly at fault (Determined findings).
func (r *Report) Faulty() []string {
	set := map[string]bool{}
	for _, f := range r.Findings {
		if f.Determined {
			for _, n := range f.Nodes {
				set[n] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// held is a receipt and the node whose log holds it.
type held struct {
	node string
	r    Receipt
}

// Audit checks many nodes' receipts against each other and against the batch roots
// on the ledger, and names the nodes at fault where the evidence allows. It is a pure
// function of its input. Pending receipts (since a node's last batch) take part in
// the cross-checks but are not expected in a committed root yet; receipts a node's
// log no longer holds (rotated away) show up as missing.
func Audit(in Input) Report {
	a := auditor{keys: in.Keys, verifiers: map[string]*identity.Verifier{}}
	a.batches(in)
	var all []held
	for _, node := range slices.Sorted(maps.Keys(in.Nodes)) {
		rec := in.Nodes[node]
		for _, lb := range rec.Batches {
			for _, r := range lb.Receipts {
				all = append(all, held{node, r})
			}
		}
		for _, r := range rec.Pending {
			all = append(all, held{node, r})
		}
		a.report.Refusals = append(a.report.Refusals, rec.Refusals...)
	}
	byFlow := map[string][]held{}
	for _, h := range all {
		byFlow[h.r.Flow] = append(byFlow[h.r.Flow], h)
	}
	a.report.Flows = len(byFlow)
	for _, flow := range slices.Sorted(maps.Keys(byFlow)) {
		a.flow(flow, byFlow[flow])
	}
	slices.SortStableFunc(a.report.Findings, func(x, y Finding) int {
		return cmp.Or(cmp.Compare(x.Kind, y.Kind), cmp.Compare(x.Flow, y.Flow), cmp.Compare(x.Batch, y.Batch),
			slices.Compare(x.Nodes, y.Nodes), cmp.Compare(x.Detail, y.Detail))
	})
	slices.SortStableFunc(a.report.Refusals, func(x, y Refusal) int {
		return cmp.Or(x.At.Compare(y.At), cmp.Compare(x.Node, y.Node), cmp.Compare(x.Flow, y.Flow))
	})
	if a.report.Findings == nil {
		a.report.Findings = []Finding{}
	}
	if a.report.Refusals == nil {
		a.report.Refusals = []Refusal{}
	}
	return a.report
}

type auditor struct {
	keys      map[string]identity.PublicKey
	verifiers map[string]*identity.Verifier
	report    Report
}

func (a *auditor) add(f Finding) {
	slices.Sort(f.Nodes)
	f.Nodes = slices.Compact(f.Nodes)
	a.report.Findings = append(a.report.Findings, f)
}

// batches checks every node's logged batches against the committed roots.
func (a *auditor) batches(in Input) {
	type key struct {
		node string
		seq  uint64
	}
	committed := map[key]Batch{}
	for _, b := range in.Committed {
		committed[key{b.Node, b.Seq}] = b
	}
	presented := map[key]bool{}
	for _, node := range slices.Sorted(maps.Keys(in.Nodes)) {
		for _, lb := range in.Nodes[node].Batches {
			k := key{node, lb.Batch.Seq}
			presented[k] = true
			cb, ok := committed[k]
			var why string
			switch {
			case !ok:
				why = fmt.Sprintf("batch %d of %s (root %s) is not on the ledger", lb.Batch.Seq, node, lb.Batch.Root.Short())
			default:
				if err := VerifyBatch(cb, lb.Receipts); err != nil {
					why = fmt.Sprintf("the log's receipts do not give the committed root: %v", err)
				}
			}
			if why == "" {
				continue
			}
			for _, r := range lb.Receipts {
				a.add(Finding{Kind: KindUncommitted, Flow: r.Flow, Batch: lb.Batch.Seq, Nodes: []string{node}, Determined: true, Detail: why})
			}
			if len(lb.Receipts) == 0 {
				a.add(Finding{Kind: KindUncommitted, Batch: lb.Batch.Seq, Nodes: []string{node}, Determined: true, Detail: why})
			}
		}
	}
	for _, b := range in.Committed {
		if !presented[key{b.Node, b.Seq}] {
			a.add(Finding{Kind: KindWithheld, Batch: b.Seq, Nodes: []string{b.Node}, Determined: true,
				Detail: fmt.Sprintf("batch %d of %s (%d receipts, root %s) is on the ledger but not in its log", b.Seq, b.Node, b.Count, b.Root.Short())})
		}
	}
}

// verify checks one side's signature of r with the key of the node that side names.
func (a *auditor) verify(r *Receipt, side Side) error {
	sig, node := r.sig(side)
	if sig == nil {
		return fmt.Errorf("no %s signature", side)
	}
	v, ok := a.verifiers[node]
	if !ok {
		key, known := a.keys[node]
		if !known {
			return fmt.Errorf("no key is known for node %s", node)
		}
		var err error
		if v, err = key.Verifier(); err != nil {
			return fmt.Errorf("key of node %s: %v", node, err)
		}
		a.verifiers[node] = v
	}
	if err := v.Verify(identity.DomainReceipt, r.View.canonical(), *sig); err != nil {
		return fmt.Errorf("%s signature (node %s): %v", side, node, err)
	}
	return nil
}

// statement is a view some node signed, with where it was seen.
type statement struct {
	view  View
	where string
}

// flow cross-checks the receipts of one flow.
func (a *auditor) flow(flow string, hs []held) {
	// What each node provably signed (by canonical view), and which holders hold a
	// receipt that passed every check.
	signed := map[string]map[string]statement{}
	claim := func(node string, v View, where string) {
		if signed[node] == nil {
			signed[node] = map[string]statement{}
		}
		c := string(v.canonical())
		if _, seen := signed[node][c]; !seen {
			signed[node][c] = statement{v, where}
		}
	}
	trusted := map[string][]Receipt{}
	heldAny := map[string]bool{} // including receipts that failed a check, reported already
	for _, h := range hs {
		r := h.r
		if h.node != r.From && h.node != r.To {
			a.add(Finding{Kind: KindStray, Flow: flow, Nodes: []string{h.node}, Determined: true,
				Detail: fmt.Sprintf("%s holds a receipt of a flow between %s and %s", h.node, r.From, r.To)})
			continue
		}
		heldAny[h.node] = true
		bad := func(detail string) {
			a.add(Finding{Kind: KindBadSignature, Flow: flow, Nodes: []string{h.node}, Determined: true,
				Detail: fmt.Sprintf("receipt held by %s: %s", h.node, detail)})
		}
		unknown := func(node string) bool {
			if _, ok := a.keys[node]; ok {
				return false
			}
			// The ledger has no key for the node: removed since, or made up by the
			// holder. The audit's key set may simply be incomplete, so no verdict.
			a.add(Finding{Kind: KindBadSignature, Flow: flow, Nodes: []string{h.node, node},
				Detail: fmt.Sprintf("receipt held by %s names node %s, whose key is not known", h.node, node)})
			return true
		}
		if unknown(r.From) || unknown(r.To) {
			continue
		}
		if err := r.Check(); err != nil {
			bad(err.Error())
			continue
		}
		own := Dialer
		if h.node == r.To {
			own = Acceptor
		}
		if sig, _ := r.sig(own); sig == nil {
			bad("lacks its holder's own signature")
			continue
		}
		ok := true
		for _, side := range []Side{Dialer, Acceptor} {
			if sig, _ := r.sig(side); sig == nil {
				continue
			}
			if err := a.verify(&r, side); err != nil {
				bad(err.Error())
				ok = false
			}
		}
		var evidence *Receipt
		if r.Dispute != nil && r.Dispute.Peer != nil {
			evidence = r.Dispute.Peer
			if evidence.From != r.From || evidence.To != r.To {
				bad("dispute evidence names other ends")
				ok = false
			} else if err := a.verify(evidence, 3-own); err != nil {
				bad("dispute evidence: " + err.Error())
				ok = false
			}
		}
		if !ok {
			continue
		}
		where := "receipt held by " + h.node
		if r.FromSig != nil {
			claim(r.From, r.View, where)
		}
		if r.ToSig != nil {
			claim(r.To, r.View, where)
		}
		if evidence != nil {
			claim(evidence.nodeOf(3-own), evidence.View, "dispute evidence held by "+h.node)
		}
		trusted[h.node] = append(trusted[h.node], r)
	}

	// A node that signed two different views of one flow is at fault, whatever else.
	equivocated := map[string]bool{}
	for _, node := range slices.Sorted(maps.Keys(signed)) {
		if views := signed[node]; len(views) > 1 {
			equivocated[node] = true
			var where []string
			for _, s := range views {
				where = append(where, s.where)
			}
			slices.Sort(where)
			a.add(Finding{Kind: KindEquivocation, Flow: flow, Nodes: []string{node}, Determined: true,
				Detail: fmt.Sprintf("%s signed %d different views of the flow (%s)", node, len(views), strings.Join(where, "; "))})
		}
	}

	// The ends, from the first trusted receipt (all trusted receipts name the same
	// ends unless someone equivocated, reported above).
	var ends *View
	for _, node := range slices.Sorted(maps.Keys(trusted)) {
		ends = &trusted[node][0].View
		break
	}
	if ends == nil {
		return
	}
	from, to := ends.From, ends.To
	one := func(node string) (View, bool) {
		if equivocated[node] || len(signed[node]) != 1 {
			return View{}, false
		}
		for _, s := range signed[node] {
			return s.view, true
		}
		return View{}, false
	}
	fv, fok := one(from)
	tv, tok := one(to)
	mismatch := false
	if fok && tok {
		if d := compare(&fv, &tv, 0); !d.none() {
			mismatch = true
			f := Finding{Kind: KindMismatch, Flow: flow, Nodes: []string{from, to}, Detail: d.String()}
			switch {
			case d.out && d.in:
				f.Link = from + "<->" + to
			case d.out:
				f.Link = from + "->" + to
			case d.in:
				f.Link = to + "->" + from
			}
			a.add(f)
		}
	}

	// Both ends should hold a receipt. A missing one is that node's fault when the
	// other end can show the node's signature on the flow; otherwise the holder's
	// claim is its word alone, and either could be lying.
	for _, pair := range [][2]string{{from, to}, {to, from}} {
		node, other := pair[0], pair[1]
		if heldAny[node] || len(trusted[other]) == 0 {
			continue
		}
		if _, signedByNode := signed[node]; signedByNode {
			a.add(Finding{Kind: KindMissing, Flow: flow, Nodes: []string{node}, Determined: true,
				Detail: fmt.Sprintf("%s signed the flow (its signature is in %s's receipt) but its log does not hold it", node, other)})
		} else {
			a.add(Finding{Kind: KindMissing, Flow: flow, Nodes: []string{node, other},
				Detail: fmt.Sprintf("only %s holds a receipt, signed by itself alone: %s withheld its receipt, or %s claims a flow that did not happen", other, node, other)})
		}
	}

	if !mismatch && len(equivocated) == 0 && allComplete(trusted[from]) && allComplete(trusted[to]) &&
		len(trusted[from]) > 0 && len(trusted[to]) > 0 {
		a.report.Agreed++
	}
}

func (r *Receipt) nodeOf(s Side) string {
	_, n := r.sig(s)
	return n
}

func allComplete(rs []Receipt) bool {
	for i := range rs {
		if !rs[i].Complete() {
			return false
		}
	}
	return true
}
