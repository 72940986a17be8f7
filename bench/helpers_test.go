package bench

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/node"
	"qnet.dev/qnet/qnettest"
	"qnet.dev/qnet/state"
)

type stateP = state.Placement

func operatorKey(b *testing.B, n *qnettest.Node) *identity.Key {
	k, err := identity.Load(filepath.Join(n.DataDir, node.OperatorKeyFile))
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// waitGone waits until every depot of the node has stopped and its runtime state (and
// cgroup) is gone, so the next measurement does not share the machine with a teardown.
func waitGone(b *testing.B, n *qnettest.Node) {
	qnettest.WaitFor(b, 60*time.Second, "depots to be removed", func() bool {
		entries, err := os.ReadDir(filepath.Join(n.DataDir, node.DepotDir))
		// Containers' runtime state (a node without runc has none).
		bundles, berr := os.ReadDir(filepath.Join(n.DataDir, "oci", "depots"))
		return err == nil && len(entries) == 0 && (berr != nil || len(bundles) == 0) && len(n.Agent().Depots()) == 0
	})
}

// untarTo extracts a tar of plain files and directories (one QNet wrote) into dir.
func untarTo(tarPath, dir string) error {
	f, err := os.Open(tarPath)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		out, err := os.Create(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, tr)
		out.Close()
		if err != nil {
			return err
		}
	}
}
