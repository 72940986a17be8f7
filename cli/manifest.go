package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/manifest"
)

func (a *app) manifestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Check service manifests and print their schema, offline",
		Long: `Work with service manifests without a network: validate files before applying them,
or print the JSON Schema of the manifest for editors.`,
		Example: `  qnet manifest validate web.yaml
  qnet manifest schema > qnet-manifest.schema.json`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	validate := &cobra.Command{
		Use:   "validate FILE|DIR...",
		Short: "Check manifests offline and print every problem at once",
		Long: `Decode and validate service manifests the way qnet apply does, without a network or a
context. A directory means every *.yaml, *.yml and *.json file directly in it.

Each valid path prints "PATH: N service(s) valid". Otherwise every problem of every file
is printed as file:line:col: field: message, and the exit code is 1.`,
		Example: `  qnet manifest validate web.yaml
  qnet manifest validate ./manifests/`,
		Args: rangeArgs(1, math.MaxInt, "one or more manifest FILEs or DIRs"),
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := 0
			for _, path := range args {
				svcs, err := decodePath(path)
				if err != nil {
					bad++
					writeManifestErrors(a.stderr, err)
					continue
				}
				names := make([]string, len(svcs))
				for i, s := range svcs {
					names[i] = s.Metadata.Name
				}
				fmt.Fprintf(a.stdout, "%s: %d service(s) valid (%s)\n", path, len(svcs), strings.Join(names, ", "))
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d path(s) hold invalid manifests", bad, len(args))
			}
			return nil
		},
	}
	schema := &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of a service manifest",
		Long: `Print the JSON Schema (draft 2020-12) of a service manifest. Editors use it to
complete and check manifests as you type, e.g. the VS Code YAML extension with a first
line "# yaml-language-server: $schema=./qnet-manifest.schema.json".`,
		Example: `  qnet manifest schema > qnet-manifest.schema.json`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			s := manifest.Schema()
			if !bytes.HasSuffix(s, []byte("\n")) {
				s = append(s, '\n')
			}
			_, err := a.stdout.Write(s)
			return err
		},
	}
	cmd.AddCommand(validate, schema)
	return cmd
}

// writeManifestErrors prints a decoding error: a manifest.ErrorList as the manifest
// package formats it, one problem per line; any other error as it is.
func writeManifestErrors(w io.Writer, err error) {
	var list manifest.ErrorList
	if errors.As(err, &list) {
		fmt.Fprintln(w, list.Error())
		return
	}
	fmt.Fprintln(w, err)
}

// decodeManifests decodes the manifests at path for apply and dev. Problems in them are
// printed to w, all at once, and the error returned only counts them.
func decodeManifests(w io.Writer, path string) ([]*manifest.Service, error) {
	svcs, err := decodePath(path)
	if err == nil {
		return svcs, nil
	}
	var list manifest.ErrorList
	if errors.As(err, &list) {
		fmt.Fprintln(w, list.Error())
		return nil, fmt.Errorf("%s: %d problem(s) in the manifests; nothing was applied", path, len(list))
	}
	return nil, err
}

// decodePath decodes the manifests at path and reads the files they name (an ingress
// schema), relative to the manifest's directory, into them: what is signed onto the
// ledger is their content, not a path on this machine.
func decodePath(path string) ([]*manifest.Service, error) {
	svcs, err := manifest.DecodePath(path)
	if err != nil {
		return nil, err
	}
	base := path
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		base = filepath.Dir(path)
	}
	for _, s := range svcs {
		if err := s.ResolveFiles(base, nil); err != nil {
			return nil, fmt.Errorf("%s: service %s: %w", path, s.Metadata.Name, err)
		}
	}
	return svcs, nil
}
