package node

import (
	"context"
	"net"

	"qnet.dev/qnet/netsvc/ingress"
	"qnet.dev/qnet/state"
)

// ingressRoutes is what the ingress offers, from the services on the ledger: for each
// service with exposed ports, its ingress port (spec.ingress.port, else the first
// exposed tcp port) over HTTP with the manifest's rate limit, schema and body limit,
// and each other exposed tcp port over TCP on the same port number.
func ingressRoutes(svcs []state.Service) []ingress.Route {
	var out []ingress.Route
	for _, s := range svcs {
		sp := s.Spec.Spec
		httpPort := ""
		if sp.Ingress != nil {
			httpPort = sp.Ingress.Port
		}
		for _, p := range sp.Ports {
			if !p.Expose || (p.Protocol != "" && p.Protocol != "tcp") {
				continue
			}
			if httpPort == "" {
				httpPort = p.Name
			}
			r := ingress.Route{Service: s.Name, Port: p.Name}
			if p.Name != httpPort {
				r.TCP, r.ListenPort = true, p.Port
			}
			if in := sp.Ingress; in != nil && !in.RateLimit.IsZero() {
				r.RateLimit = ingress.Rate{Count: in.RateLimit.Count, Per: in.RateLimit.Per, Burst: in.Burst}
			}
			if in := sp.Ingress; in != nil && !r.TCP {
				r.Schema = []byte(in.SchemaJSON)
				r.MaxBodyBytes = int64(in.MaxBodyBytes)
			}
			out = append(out, r)
		}
	}
	return out
}

// startIngress starts the ingress on cfg.IngressAddr, its routes following the ledger.
func (n *Node) startIngress(ctx context.Context) error {
	if n.cfg.IngressAddr == "" {
		return nil
	}
	table := ingress.NewRouteTable()
	refresh := func() {
		svcs, err := n.store.Services()
		if err != nil {
			n.log.Warn("ingress routes not refreshed", "err", err)
			return
		}
		table.Set(ingressRoutes(svcs))
	}
	refresh()
	cfg := ingress.DefaultConfig()
	cfg.HTTPAddr, cfg.Network, cfg.Routes, cfg.Backend, cfg.Logger = n.cfg.IngressAddr, n.catalog.Network(), table, n.proxy, n.log
	if h, _, err := net.SplitHostPort(n.cfg.IngressAddr); err == nil {
		cfg.TCPHost = h
	}
	in, err := ingress.New(cfg)
	if err != nil {
		return err
	}
	n.ingress = in
	n.wg.Go(func() {
		for {
			ch := n.catalog.Changed()
			select {
			case <-ch:
				refresh()
			case <-ctx.Done():
				return
			}
		}
	})
	n.wg.Go(func() {
		if err := in.Run(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("ingress stopped", "err", err)
		}
	})
	return nil
}

// IngressAddr returns where the node takes HTTP traffic for exposed services ("" when
// it does not).
func (n *Node) IngressAddr() string {
	if n.ingress == nil {
		return ""
	}
	return n.ingress.Addr().String()
}

// Ingress returns the node's ingress (nil when it has none).
func (n *Node) Ingress() *ingress.Ingress { return n.ingress }
