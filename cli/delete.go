package cli

import (
	"fmt"
	"math"

	"github.com/spf13/cobra"
)

func (a *app) deleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a service",
		Long: `Delete an object. Deleting a service removes it from the ledger; its nodes then stop
and remove its depots.`,
		Example: `  qnet delete service hello`,
		Args:    cobra.ArbitraryArgs,
		RunE:    groupRun,
	}
	svc := &cobra.Command{
		Use:     "service NAME...",
		Aliases: []string{"services", "svc"},
		Short:   "Delete services and their depots",
		Long: `Delete services: a service.delete transaction, signed with your operator key, goes on
the ledger, and the nodes stop and remove the services' depots.`,
		Example: `  qnet delete service hello
  qnet delete svc web worker`,
		Args:              rangeArgs(1, math.MaxInt, "one or more service NAMEs"),
		ValidArgsFunction: a.completeServices,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			for _, name := range args {
				res, err := cl.Delete(cmd.Context(), name)
				if err != nil {
					return fmt.Errorf("delete service %s: %w", name, err)
				}
				fmt.Fprintf(a.stdout, "service/%s deleted (block %d)\n", name, res.Height)
			}
			return nil
		},
	}
	cmd.AddCommand(svc)
	return cmd
}
