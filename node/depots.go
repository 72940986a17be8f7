package node

import (
	"context"
	"fmt"
	"time"

	"qnet.dev/qnet/ctxtime"
	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/driver"
)

// prepareDepot makes sure the image or module a depot runs is in this node's store,
// fetching it from the peers that hold it (checked blob by blob) when it is not. A wasm
// depot's Command becomes the module's file in the store, which the wasm driver runs.
func (n *Node) prepareDepot(ctx context.Context, s *driver.Spec) error {
	var ref string
	switch {
	case s.Image != nil:
		ref = s.Image.Digest
	case s.Wasm != nil:
		ref = s.Wasm.Digest
	default:
		return nil
	}
	d, err := depot.ParseDigest(ref)
	if err != nil {
		return fmt.Errorf("depot %q: %w", ref, err)
	}
	img, err := n.depots.Image(d)
	if err != nil {
		fctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
		defer cancel()
		start := time.Now()
		if img, err = n.depots.Fetch(fctx, d, n.swarm); err != nil {
			return fmt.Errorf("fetch depot %s from peers: %w", d.Short(), err)
		}
		n.log.Info("depot fetched from peers", "depot", d.Short(), "size", img.Size, "took", time.Since(start).Round(time.Millisecond))
	}
	if s.Wasm == nil {
		return nil
	}
	if img.Kind != depot.KindWasm || len(img.Layers) != 1 {
		return fmt.Errorf("depot %s is an image of kind %q, not a WebAssembly module: name it under depot.image", d.Short(), img.Kind)
	}
	path, err := n.depots.Path(img.Layers[0].Digest)
	if err != nil {
		return fmt.Errorf("depot %s: module: %w", d.Short(), err)
	}
	s.Command, s.Args = path, s.Wasm.Args
	return nil
}

// collectDepots removes from the store what no revision of any service refers to, now
// and then: every revision stays runnable (a rollback needs its depot), nothing else
// is kept.
func (n *Node) collectDepots(ctx context.Context) {
	for {
		if !ctxtime.Sleep(ctx, 10*time.Minute) {
			return
		}
		keep, err := n.referencedDepots()
		if err != nil {
			n.log.Warn("depot collection skipped", "err", err)
			continue
		}
		removed, freed, err := n.depots.GC(ctx, keep)
		if err != nil {
			n.log.Warn("depot collection failed", "err", err)
			continue
		}
		if removed > 0 {
			n.log.Info("depot blobs collected", "blobs", removed, "bytes", freed)
		}
	}
}

// referencedDepots lists the depots the services' revisions name.
func (n *Node) referencedDepots() ([]depot.Digest, error) {
	svcs, err := n.store.Services()
	if err != nil {
		return nil, err
	}
	var keep []depot.Digest
	for _, svc := range svcs {
		revs, err := n.store.Revisions(svc.Name)
		if err != nil {
			return nil, err
		}
		for _, r := range revs {
			dp := r.Spec.Spec.Depot
			switch {
			case dp.Image != nil && dp.Image.Digest != "":
				keep = append(keep, depot.Digest(dp.Image.Digest))
			case dp.Wasm != nil && dp.Wasm.Digest != "":
				keep = append(keep, depot.Digest(dp.Wasm.Digest))
			}
		}
	}
	return keep, nil
}
