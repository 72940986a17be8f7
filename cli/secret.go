package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/client"
	"qnet.dev/qnet/secret"
)

func (a *app) secretCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Put, list and remove secrets",
		Long: `Secrets are sealed on this machine to the network's secret key (HPKE, ML-KEM-768 +
X25519) and only the sealed form goes on the ledger. A node gets a secret only while it
runs a depot whose manifest names it (spec.secrets), over a tunnel, sealed to that node
alone. Nothing shows a secret's value: not the API, not the ledger, not logs.`,
		Example: `  qnet secret put db-password --from-file ./pw.txt
  qnet secret list
  qnet secret rm db-password`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	var fromFile, fromLiteral string
	put := &cobra.Command{
		Use:   "put NAME (--from-file FILE | --from-literal NAME=VALUE | -)",
		Short: "Put a new version of a secret",
		Long: `Put a new version of a secret: the first version is 1, each put adds one. The value is
read from a file, from standard input (-), or given literally (which leaves it in your
shell's history: prefer a file). It is taken byte for byte, a final newline included,
and may be at most 64 KiB. Services that name the secret get a new revision, which
replaces their depots with ones that see the new value.`,
		Example: `  qnet secret put db-password --from-file ./pw.txt
  printf %s "$PW" | qnet secret put db-password -
  qnet secret put api-token --from-literal api-token=abc123`,
		Args: rangeArgs(1, 2, "NAME, and - to read the value from standard input"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			stdin := len(args) == 2
			if stdin && args[1] != "-" {
				return usageErr("secret put: the second argument may only be - (read standard input), got %q", args[1])
			}
			sources := 0
			for _, set := range []bool{stdin, fromFile != "", fromLiteral != ""} {
				if set {
					sources++
				}
			}
			if sources != 1 {
				return usageErr("secret put: give the value in exactly one way: --from-file FILE, --from-literal %s=VALUE, or - for standard input", name)
			}
			if err := secret.ValidateName(name); err != nil {
				return usageErr("secret put: %v", err)
			}
			var (
				raw []byte
				err error
			)
			switch {
			case fromLiteral != "":
				k, v, ok := strings.Cut(fromLiteral, "=")
				if !ok || k != name {
					return usageErr("secret put: --from-literal must be %s=VALUE (the secret's name, '=', its value)", name)
				}
				raw = []byte(v)
			case fromFile != "":
				raw, err = readBounded(fromFile, nil)
			default:
				raw, err = readBounded("standard input", cmd.InOrStdin())
			}
			if err != nil {
				return fmt.Errorf("secret put %s: %w", name, err)
			}
			value := secret.NewValue(name, 0, raw)
			defer value.Wipe()
			if err := secret.CheckSize(name, value.Len()); err != nil {
				return fmt.Errorf("secret put: %w", err)
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			res, version, err := cl.PutSecret(cmd.Context(), name, value)
			if err != nil {
				return fmt.Errorf("secret put %s: %w", name, err)
			}
			fmt.Fprintf(a.stdout, "secret/%s version %d put (block %d)\n", name, version, res.Height)
			return nil
		},
	}
	put.Flags().StringVar(&fromFile, "from-file", "", "read the value from FILE")
	put.Flags().StringVar(&fromLiteral, "from-literal", "", "the value, as NAME=VALUE")

	list := inputListCmd(a, "List secrets: names, versions, sizes, who put them and when; never values",
		`  qnet secret list
  qnet secret list -o json`,
		(*client.Client).Secrets,
		"NAME\tVERSION\tSIZE\tUPDATED BY\tUPDATED\tUSED BY",
		func(s client.SecretInfo, now time.Time) string {
			return fmt.Sprintf("%s\t%d\t%d\t%s\t%s\t%s", s.Name, s.Version, s.Size, s.UpdatedBy, age(s.Updated, now), orDash(strings.Join(s.UsedBy, ",")))
		})

	rm := a.inputRemoveCmd("secret", "Remove a secret that no service names",
		`Remove a secret. It is refused while the current revision of a service names the
secret: remove it from those manifests (or delete the services) first, so no depot loses
a secret it needs. Earlier sealed versions stay in the ledger's history, sealed.`,
		`  qnet secret rm db-password`,
		(*client.Client).RemoveSecret)

	rotate := &cobra.Command{
		Use:   "rotate-key",
		Short: "Replace the network's secret key and seal every secret again",
		Long: `Replace the network's secret key: the ordering leader makes a new key, gives each
validator a share of it sealed to that validator, and seals every secret again to the new
key, all in one transaction. The old key is no longer used. Values do not change, so no
depot restarts.`,
		Example: `  qnet secret rotate-key`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			res, err := cl.RotateSecretKey(cmd.Context())
			if err != nil {
				return fmt.Errorf("secret rotate-key: %w", err)
			}
			fmt.Fprintf(a.stdout, "network secret key %s replaces %s; %d secret(s) sealed again\n", res.New, res.Old, res.Secrets)
			return nil
		},
	}
	cmd.AddCommand(put, list, rm, rotate)
	return cmd
}

// readBounded reads a secret's or config's value from a file (r nil) or from r, refusing
// more than the largest size allowed before it is all in memory.
func readBounded(name string, r io.Reader) ([]byte, error) {
	if r == nil {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	const limit = 256 << 10 // the larger of the secret and config limits
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return data, nil
}

// inputListCmd builds the list command of secrets or configs: fetch is the client call
// that lists them, -o json or yaml prints its answer as it is, and the table has the
// columns header names, with a row (cells without the final newline) for each item.
func inputListCmd[T any](a *app, short, example string, fetch func(*client.Client, context.Context) ([]T, error), header string, row func(item T, now time.Time) string) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   short,
		Example: example,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			infos, err := fetch(cl, cmd.Context())
			if err != nil {
				return err
			}
			if output != formatTable {
				return writeDoc(a.stdout, output, infos)
			}
			now := a.now()
			t := newTable(a.stdout)
			fmt.Fprintln(t, header)
			for _, it := range infos {
				fmt.Fprintln(t, row(it, now))
			}
			return t.Flush()
		},
	}
	outputFlag(cmd, &output, formatTable, formatJSON, formatYAML)
	return cmd
}

// inputRemoveCmd builds the rm command of secrets or configs: kind is "secret" or
// "config", as the messages name it, and remove the client call that removes one.
func (a *app) inputRemoveCmd(kind, short, long, example string, remove func(*client.Client, context.Context, string) (api.TxResult, error)) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"remove", "delete"},
		Short:   short,
		Long:    long,
		Example: example,
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			res, err := remove(cl, cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("%s rm %s: %w", kind, args[0], err)
			}
			fmt.Fprintf(a.stdout, "%s/%s removed (block %d)\n", kind, args[0], res.Height)
			return nil
		},
	}
}
