package node

import (
	"context"

	"qnet.dev/qnet/secret"
)

// AskSecret asks validator, over the mesh, to release secret name for depot placement,
// as this node's agent does; tests use it to ask for what the agent would not.
func (n *Node) AskSecret(ctx context.Context, validator, name, placement string) error {
	tip, _, err := n.store.Tip()
	if err != nil {
		return err
	}
	var rel secret.Released
	return n.mesh.Call(ctx, validator, "secret.release", releaseRequest{Name: name, Placement: placement, Height: tip.Height}, &rel)
}
