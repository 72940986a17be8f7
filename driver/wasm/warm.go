package wasm

import (
	"context"
	"errors"
	"fmt"
)

// Warm waits until a supervisor is ready for the next Start (started in advance and,
// when a module was started before, with that module compiled), or ctx ends. Start
// never needs it: it is for callers that measure start latency in the steady state
// of a node, which keeps one supervisor ready between starts.
func (d *Driver) Warm(ctx context.Context) error {
	for {
		d.warmMu.Lock()
		warm, refilling, changed, closed := d.warm != nil, d.refilling, d.warmChanged, d.closed
		d.warmMu.Unlock()
		switch {
		case closed:
			return errors.New("wait for a warm supervisor: the driver is closed")
		case warm && !refilling:
			return nil
		case !refilling:
			return errors.New("wait for a warm supervisor: none is getting ready (the last one failed to start, or neither Recover nor Start ran yet)")
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for a warm supervisor: %w", ctx.Err())
		}
	}
}
