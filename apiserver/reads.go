package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/state"
)

// view gathers services, their placements and nodes from the state, once per request.
type view struct {
	services   []state.Service
	placements []state.Placement
	nodes      map[string]state.Node
	revs       *state.RevisionCache
}

func (s *Server) read(filter func(*state.Placement) bool) (*view, error) {
	st := s.b.Store()
	v := &view{nodes: map[string]state.Node{}, revs: &state.RevisionCache{Store: st}}
	var err error
	if v.services, err = st.Services(); err != nil {
		return nil, err
	}
	if v.placements, err = st.Placements(filter); err != nil {
		return nil, err
	}
	nodes, err := st.Nodes()
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		v.nodes[n.ID] = n
	}
	return v, nil
}

func (v *view) depot(p state.Placement) api.Depot {
	d := api.Depot{
		ID: p.ID, Service: p.Service, Revision: p.Revision, Node: p.Node, Slot: p.Slot, Created: p.Created,
		Status: ledger.DepotStatus{ID: p.ID, State: ledger.DepotPending},
	}
	n := v.nodes[p.Node]
	d.NodeName = n.Name
	if p.Status != nil {
		d.Status = *p.Status
	}
	if len(d.Status.Ports) > 0 {
		host := "127.0.0.1"
		if h, _, err := net.SplitHostPort(n.Addr); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
			host = h
		}
		d.Addrs = map[string]string{}
		for name, port := range d.Status.Ports {
			d.Addrs[name] = net.JoinHostPort(host, strconv.Itoa(port))
		}
	}
	return d
}

func (v *view) service(svc state.Service, withDepots bool) api.Service {
	out := api.Service{
		Name: svc.Name, Revision: svc.Revision, AppliedBy: svc.AppliedBy, Created: svc.Created,
		Updated: svc.Updated, Desired: svc.Spec.Spec.Replicas, Spec: svc.Spec, Unschedulable: svc.Unschedulable,
	}
	ro := svc.CurrentRollout()
	out.Rollout = &ro
	if ro.Revision != svc.Revision {
		if r, err := v.revs.Revision(svc.Name, ro.Revision); err == nil {
			out.Desired = r.Spec.Spec.Replicas
		}
	}
	for _, p := range v.placements {
		if p.Service != svc.Name {
			continue
		}
		d := v.depot(p)
		if v.revs.Equivalent(svc.Name, p.Revision, ro.Revision) {
			out.Placed++
			switch d.Status.State {
			case ledger.DepotRunning, ledger.DepotReady:
				out.Running++
			}
			if d.Status.Ready {
				out.Ready++
			}
		}
		if withDepots {
			out.Depots = append(out.Depots, d)
		}
	}
	return out
}

func (s *Server) services(w http.ResponseWriter, r *http.Request) error {
	v, err := s.read(nil)
	if err != nil {
		return err
	}
	out := make([]api.Service, 0, len(v.services))
	for _, svc := range v.services {
		out = append(out, v.service(svc, false))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) serviceRecord(name string) (state.Service, error) {
	svc, ok, err := s.b.Store().Service(name)
	if err != nil {
		return svc, err
	}
	if !ok {
		return svc, notFound("service %q not found (qnet get services lists them)", name)
	}
	return svc, nil
}

func (s *Server) service(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	svc, err := s.serviceRecord(name)
	if err != nil {
		return err
	}
	v, err := s.read(func(p *state.Placement) bool { return p.Service == name })
	if err != nil {
		return err
	}
	revs, err := s.b.Store().Revisions(name)
	if err != nil {
		return err
	}
	detail := api.ServiceDetail{Service: v.service(svc, true), Revisions: revs, Events: s.events.Recent(name, 50)}
	writeJSON(w, http.StatusOK, detail)
	return nil
}

func (s *Server) depots(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	service, node := q.Get("service"), q.Get("node")
	if service != "" {
		if _, err := s.serviceRecord(service); err != nil {
			return err
		}
	}
	v, err := s.read(func(p *state.Placement) bool {
		return (service == "" || p.Service == service) && (node == "" || p.Node == node)
	})
	if err != nil {
		return err
	}
	out := make([]api.Depot, 0, len(v.placements))
	for _, p := range v.placements {
		out = append(out, v.depot(p))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) depot(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	p, ok, err := s.b.Store().Placement(id)
	if err != nil {
		return err
	}
	if !ok {
		return notFound("depot %q not found (qnet get depots lists them)", id)
	}
	v, err := s.read(func(q *state.Placement) bool { return q.ID == id })
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v.depot(p))
	return nil
}

func (s *Server) nodes(w http.ResponseWriter, r *http.Request) error {
	v, err := s.read(nil)
	if err != nil {
		return err
	}
	specs := map[string]*state.Service{}
	for i := range v.services {
		specs[v.services[i].Name] = &v.services[i]
	}
	leader := s.b.Leader()
	out := make([]api.Node, 0, len(v.nodes))
	for _, n := range v.nodes {
		an := api.Node{
			ID: n.ID, Name: n.Name, Addr: n.Addr, OS: n.OS, Arch: n.Arch, CPU: n.CPU, Memory: n.Memory,
			Validator: n.Validator, Leader: n.ID == leader, Alive: s.b.Alive(n.ID), Labels: n.Labels, Joined: n.Joined,
		}
		for _, p := range v.placements {
			if p.Node != n.ID {
				continue
			}
			an.Depots++
			if svc := specs[p.Service]; svc != nil {
				an.CPUUsed += int64(svc.Spec.Spec.Resources.CPU)
				an.MemUsed += int64(svc.Spec.Spec.Resources.Memory)
			}
		}
		out = append(out, an)
	}
	sortNodes(out)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func sortNodes(ns []api.Node) {
	for i := 1; i < len(ns); i++ {
		for j := i; j > 0 && ns[j].Name < ns[j-1].Name; j-- {
			ns[j], ns[j-1] = ns[j-1], ns[j]
		}
	}
}

func uintParam(r *http.Request, name string, def uint64) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, badRequest("query parameter %s=%q: want a non-negative integer", name, v)
	}
	return n, nil
}

// blocks lists block summaries: from (default: the last `limit`) up to limit blocks.
func (s *Server) blocks(w http.ResponseWriter, r *http.Request) error {
	tip, ok, err := s.b.Store().Tip()
	if err != nil {
		return err
	}
	if !ok {
		writeJSON(w, http.StatusOK, []api.BlockSummary{})
		return nil
	}
	limit, err := uintParam(r, "limit", 20)
	if err != nil {
		return err
	}
	limit = max(1, min(limit, 1000))
	def := uint64(0)
	if tip.Height+1 > limit {
		def = tip.Height + 1 - limit
	}
	from, err := uintParam(r, "from", def)
	if err != nil {
		return err
	}
	out := []api.BlockSummary{} // [] rather than null past the tip
	for h := from; h <= tip.Height && uint64(len(out)) < limit; h++ {
		b, err := s.blockAt(h)
		if err != nil {
			return err
		}
		out = append(out, s.summarize(b))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) blockAt(h uint64) (*ledger.Block, error) {
	data, err := s.b.Store().Block(h)
	if err != nil {
		return nil, err
	}
	return ledger.DecodeBlock(data)
}

func (s *Server) block(w http.ResponseWriter, r *http.Request) error {
	h, err := strconv.ParseUint(r.PathValue("height"), 10, 64)
	if err != nil {
		return badRequest("block height %q: want a non-negative integer", r.PathValue("height"))
	}
	data, err := s.b.Store().Block(h)
	if errors.Is(err, state.ErrNotFound) {
		if tip, ok, terr := s.b.Store().Tip(); terr == nil && ok && h > tip.Height {
			return notFound("block %d not found: the chain's tip is at height %d", h, tip.Height)
		}
		return notFound("block %d not found", h)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(data)
	return nil
}

func (s *Server) summarize(b *ledger.Block) api.BlockSummary {
	out := api.BlockSummary{
		Height: b.Height, Hash: b.Hash.String(), Prev: b.Prev.String(), Time: b.Time,
		Proposer: b.Proposer, TxRoot: b.TxRoot.String(),
	}
	for _, t := range b.Txs {
		ts := api.TxSummary{ID: t.ID().String(), Type: string(t.Type), Signer: t.Signer, By: t.Signer, Summary: txSummary(t)}
		if rec, ok, _ := s.b.Store().Tx(t.ID()); ok {
			ts.Error = rec.Error
		}
		out.Txs = append(out.Txs, ts)
	}
	return out
}

// txSummary says in one line what a transaction does.
func txSummary(t *ledger.Tx) string {
	if s, ok := rolloutSummary(t); ok {
		return s
	}
	switch t.Type {
	case ledger.TxGenesis:
		var g ledger.Genesis
		if t.Decode(&g) == nil {
			return fmt.Sprintf("network %s: %d operator(s), %d node(s)", g.Network, len(g.Operators), len(g.Nodes))
		}
	case ledger.TxServiceApply:
		var p ledger.ServiceApply
		if t.Decode(&p) == nil && p.Service != nil {
			if p.Cause != "" {
				return fmt.Sprintf("apply service %s (%d replicas): %s", p.Service.Metadata.Name, p.Service.Spec.Replicas, p.Cause)
			}
			return fmt.Sprintf("apply service %s (%d replicas)", p.Service.Metadata.Name, p.Service.Spec.Replicas)
		}
	case ledger.TxServiceDelete:
		var p ledger.ServiceDelete
		if t.Decode(&p) == nil {
			return "delete service " + p.Name
		}
	case ledger.TxPlacement:
		var p ledger.PlacementSet
		if t.Decode(&p) == nil {
			return fmt.Sprintf("place %d, remove %d depot(s)", len(p.Add), len(p.Remove))
		}
	case ledger.TxDepotStatus:
		var p ledger.DepotStatusReport
		if t.Decode(&p) == nil {
			states := make([]string, 0, len(p.Depots))
			for _, d := range p.Depots {
				states = append(states, d.ID+"="+string(d.State))
			}
			if len(states) > 4 {
				states = append(states[:4], fmt.Sprintf("+%d", len(states)-4))
			}
			return "status " + strings.Join(states, " ")
		}
	case ledger.TxNodeUpdate:
		var p ledger.NodeUpdate
		if t.Decode(&p) == nil {
			return "update node " + p.Node.Name
		}
	}
	raw, _ := json.Marshal(t.Payload)
	if len(raw) > 80 {
		raw = append(raw[:77], "..."...)
	}
	return string(raw)
}

// verify re-checks this node's whole chain from genesis.
func (s *Server) verify(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, VerifyStore(s.b.Store(), s.b.Status().Node))
	return nil
}

// VerifyStore checks the store's file and re-verifies its chain from genesis.
func VerifyStore(st *state.Store, node string) api.VerifyReport {
	rep := api.VerifyReport{Node: node}
	if err := st.Check(); err != nil {
		rep.Error = err.Error()
		return rep
	}
	next, done, err := st.Blocks()
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	defer done()
	r, err := ledger.Verify(next)
	rep.Blocks, rep.Txs, rep.Tip, rep.Network = r.Blocks, r.Txs, r.Tip.String(), r.Network.String()
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	rep.OK = true
	return rep
}
