package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"

	"qnet.dev/qnet/client"
	"qnet.dev/qnet/manifest"
)

func (a *app) diffCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "diff -f FILE|DIR",
		Short: "Show what an apply of manifests would change",
		Long: `Show, for each service in the manifests, what an apply would change against the
newest revision on the ledger: a unified diff of the two specs as YAML, with the defaults
filled in on both sides, so only real changes show. A service that does not exist yet
shows as wholly new. Nothing is signed or sent.

Image and wasm references are compared as written: a reference that is the same as the
current revision's keeps its digest; a new one shows without a digest, which apply
resolves.`,
		Example: `  qnet diff -f web.yaml
  qnet diff -f ./manifests/`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usageErr("-f/--filename is required: the manifest file, or a directory of them")
			}
			svcs, err := decodeManifests(a.stderr, file)
			if err != nil {
				return err
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			for _, s := range svcs {
				s.Default()
				var cur *manifest.Service
				rev := uint64(0)
				d, err := cl.Service(cmd.Context(), s.Metadata.Name)
				switch {
				case client.IsNotFound(err):
				case err != nil:
					return fmt.Errorf("service %s: %w", s.Metadata.Name, err)
				default:
					cur, rev = d.Spec, d.Revision
				}
				if err := writeServiceDiff(a.stdout, s, cur, rev); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "manifest file, or directory of *.yaml, *.yml and *.json manifests")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	return cmd
}

// writeServiceDiff writes the diff of service s (defaulted) against cur, its spec at
// revision rev (nil when the service does not exist).
func writeServiceDiff(w io.Writer, s, cur *manifest.Service, rev uint64) error {
	name := s.Metadata.Name
	if cur != nil {
		keepDigests(s, cur)
	}
	next, err := specYAML(s)
	if err != nil {
		return err
	}
	var was []string
	from := "/dev/null"
	if cur != nil {
		if was, err = specYAML(cur); err != nil {
			return err
		}
		from = fmt.Sprintf("service/%s (revision %d)", name, rev)
	}
	out := unifiedDiff(from, fmt.Sprintf("service/%s (manifest)", name), was, next, 3)
	if out == "" {
		_, err := fmt.Fprintf(w, "service/%s unchanged (revision %d)\n", name, rev)
		return err
	}
	_, err = io.WriteString(w, out)
	return err
}

// keepDigests gives s the digests of cur where it names the same image or module, so
// an unchanged reference does not show as a change (apply would resolve it the same
// way unless the tag moved).
func keepDigests(s, cur *manifest.Service) {
	if im, c := s.Spec.Depot.Image, cur.Spec.Depot.Image; im != nil && c != nil && im.Digest == "" && im.Ref == c.Ref {
		im.Digest = c.Digest
	}
	if wm, c := s.Spec.Depot.Wasm, cur.Spec.Depot.Wasm; wm != nil && c != nil && wm.Digest == "" && wm.Module == c.Module {
		wm.Digest = c.Digest
	}
}

// specYAML is the YAML form of s (from its JSON form, the ledger's), as lines.
func specYAML(s *manifest.Service) ([]string, error) {
	data, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode service %s: %w", s.Metadata.Name, err)
	}
	y, err := yaml.JSONToYAML(data)
	if err != nil {
		return nil, fmt.Errorf("encode service %s as YAML: %w", s.Metadata.Name, err)
	}
	return strings.Split(strings.TrimSuffix(string(y), "\n"), "\n"), nil
}

// maxDiffCells bounds the table of the line diff (lines of a x lines of b); beyond it
// the diff shows every line as removed and added, which is still correct.
const maxDiffCells = 1 << 22

// unifiedDiff is a unified diff of a and b, with ctx lines of context around changes,
// under ---/+++ headers naming from and to; "" when they are the same.
func unifiedDiff(from, to string, a, b []string, ctx int) string {
	ops := diffLines(a, b)
	changed := false
	for _, op := range ops {
		changed = changed || op.kind != ' '
	}
	if !changed {
		return ""
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s\n", from, to)
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		// A hunk: from ctx lines before this change to ctx lines after the last change
		// that lies within 2*ctx lines of the one before it (as GNU diff joins them).
		start := max(0, i-ctx)
		end := i
		for j := i; j < len(ops); j++ {
			if ops[j].kind != ' ' {
				end = j
			} else if j-end > 2*ctx {
				break
			}
		}
		stop := min(len(ops), end+ctx+1)
		aStart, bStart, aLen, bLen := ops[start].a, ops[start].b, 0, 0
		for _, op := range ops[start:stop] {
			if op.kind != '+' {
				aLen++
			}
			if op.kind != '-' {
				bLen++
			}
		}
		fmt.Fprintf(&sb, "@@ -%s +%s @@\n", hunkRange(aStart, aLen), hunkRange(bStart, bLen))
		for _, op := range ops[start:stop] {
			sb.WriteByte(op.kind)
			sb.WriteString(op.line)
			sb.WriteByte('\n')
		}
		i = stop
	}
	return sb.String()
}

func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if n == 1 {
		return fmt.Sprint(start + 1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

// diffOp is one line of a diff: ' ' kept, '-' only in a, '+' only in b; a and b are
// the 0-based positions the line is at (or would be at) in each.
type diffOp struct {
	kind byte
	line string
	a, b int
}

// diffLines aligns a and b along a longest common subsequence of lines.
func diffLines(a, b []string) []diffOp {
	var ops []diffOp
	if len(a)*len(b) > maxDiffCells {
		for i, l := range a {
			ops = append(ops, diffOp{'-', l, i, 0})
		}
		for j, l := range b {
			ops = append(ops, diffOp{'+', l, len(a), j})
		}
		return ops
	}
	// lcs[i][j] is the length of the LCS of a[i:] and b[j:].
	lcs := make([][]int32, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int32, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			ops = append(ops, diffOp{' ', a[i], i, j})
			i++
			j++
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, diffOp{'-', a[i], i, j})
			i++
		default:
			ops = append(ops, diffOp{'+', b[j], i, j})
			j++
		}
	}
	return ops
}
