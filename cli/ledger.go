package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/apiserver"
	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/node"
	"qnet.dev/qnet/state"
)

// maxBlocks is the most blocks the API returns in one answer.
const maxBlocks = 1000

func (a *app) ledgerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "Read and verify the network's ledger",
		Long: `The ledger is the network's signed, hash-chained record of every decision: services
applied and deleted, placements, nodes' status reports. show lists its blocks; verify
re-checks every hash and signature from genesis.`,
		Example: `  qnet ledger show --limit 5
  qnet ledger verify`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	cmd.AddCommand(a.ledgerShowCmd(), a.ledgerVerifyCmd())
	return cmd
}

func (a *app) ledgerShowCmd() *cobra.Command {
	var (
		from   uint64
		limit  int
		output string
	)
	cmd := &cobra.Command{
		Use:   "show",
		Short: "List blocks with their transactions",
		Long: `List blocks of the ledger, oldest first, each with its transactions: their type, who
signed them (an operator's name or a node's ID), a one-line summary, and the error that
kept a committed transaction from taking effect, if any. Without --from, the latest
--limit blocks are shown.`,
		Example: `  qnet ledger show
  qnet ledger show --from 0 --limit 3
  qnet ledger show -o json`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 || limit > maxBlocks {
				return usageErr("invalid value %d for --limit: want a number of blocks from 1 to %d", limit, maxBlocks)
			}
			var fromp *uint64
			if cmd.Flags().Changed("from") {
				fromp = &from
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			blocks, err := cl.Blocks(cmd.Context(), fromp, limit)
			if err != nil {
				return err
			}
			if output != formatText {
				return writeDoc(a.stdout, output, nonNil(blocks))
			}
			return writeBlocks(a.stdout, blocks)
		},
	}
	cmd.Flags().Uint64Var(&from, "from", 0, "first block height to show (default: the latest --limit blocks)")
	cmd.Flags().IntVar(&limit, "limit", 20, fmt.Sprintf("how many blocks to show (1-%d)", maxBlocks))
	outputFlag(cmd, &output, formatText, formatJSON, formatYAML)
	return cmd
}

// writeBlocks renders blocks for people: a line per block, then its transactions.
func writeBlocks(w io.Writer, blocks []api.BlockSummary) error {
	if len(blocks) == 0 {
		_, err := fmt.Fprintln(w, "No blocks.")
		return err
	}
	for i, b := range blocks {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "Block %d  %s  %s  proposer %s  %d tx\n", b.Height, short(b.Hash), b.Time.UTC().Format(time.RFC3339),
			orDash(b.Proposer), len(b.Txs))
		if len(b.Txs) == 0 {
			continue
		}
		t := newTable(w)
		for _, tx := range b.Txs {
			fmt.Fprintf(t, "  %s\t%s\tby %s\t%s\n", short(tx.ID), tx.Type, orDash(tx.By), oneLine(tx.Summary))
			if tx.Error != "" {
				fmt.Fprintf(t, "  \t\t\terror: %s\n", oneLine(tx.Error))
			}
		}
		if err := t.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// short is the first 12 characters of a hex hash, as ledger.Hash.Short gives.
func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func (a *app) ledgerVerifyCmd() *cobra.Command {
	var (
		dataDir string
		output  string
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Re-check every block's hashes and signatures from genesis",
		Long: `Re-check the whole ledger from genesis: each block's hash, its link to the previous
block, the Merkle root of its transactions, the proposer's signature, and every
transaction's hybrid signature. Exits non-zero when any check fails, naming the block.

Without --data-dir the node of the current context verifies its copy. With --data-dir
the copy in a stopped node's data dir is verified here, offline.`,
		Example: `  qnet ledger verify
  qnet ledger verify --data-dir /var/lib/qnet
  qnet ledger verify -o json`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rep api.VerifyReport
			if dataDir != "" {
				r, err := verifyDataDir(dataDir)
				if err != nil {
					return err
				}
				rep = r
			} else {
				cl, err := a.client()
				if err != nil {
					return err
				}
				r, err := cl.VerifyLedger(cmd.Context())
				if err != nil {
					return err
				}
				rep = *r
			}
			if output != formatText {
				if err := writeDoc(a.stdout, output, rep); err != nil {
					return err
				}
			} else if rep.OK {
				fmt.Fprintf(a.stdout, "Ledger verified: %d block(s), %d transaction(s), tip %s, network %s (node %s)\n",
					rep.Blocks, rep.Txs, short(rep.Tip), short(rep.Network), orDash(rep.Node))
			}
			if !rep.OK {
				return fmt.Errorf("ledger verification failed after %d good block(s): %s", rep.Blocks, orDash(rep.Error))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "verify the ledger in this stopped node's data dir, offline")
	_ = cmd.MarkFlagDirname("data-dir")
	outputFlag(cmd, &output, formatText, formatJSON, formatYAML)
	return cmd
}

// verifyDataDir verifies the chain kept in a node's data dir. The node must be stopped:
// its running process holds the store.
func verifyDataDir(dir string) (api.VerifyReport, error) {
	path := filepath.Join(dir, node.StateFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return api.VerifyReport{}, fmt.Errorf("--data-dir %s holds no ledger (no %s): want the data dir of a node made by qnet init or qnet dev", dir, node.StateFile)
	} else if err != nil {
		return api.VerifyReport{}, fmt.Errorf("--data-dir: %w", err)
	}
	id := ""
	if k, err := identity.Load(filepath.Join(dir, node.NodeKeyFile)); err == nil {
		id = k.ID()
	}
	st, err := state.Open(path)
	if err != nil {
		return api.VerifyReport{}, fmt.Errorf("verify %s: %w", dir, err)
	}
	defer st.Close()
	return apiserver.VerifyStore(st, id), nil
}
