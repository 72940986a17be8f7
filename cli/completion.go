package cli

import (
	"github.com/spf13/cobra"
)

func (a *app) completionCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print the shell completion script for qnet",
		Long: `Print a script that makes your shell complete qnet's commands, flags, and names of
services and contexts (read from the current context's node). Load it in your shell's
start-up file, as the examples show.`,
		Example: `  # bash (needs the bash-completion package)
  source <(qnet completion bash)
  qnet completion bash > /etc/bash_completion.d/qnet

  # zsh
  qnet completion zsh > "${fpath[1]}/_qnet"

  # fish
  qnet completion fish > ~/.config/fish/completions/qnet.fish

  # PowerShell
  qnet completion powershell | Out-String | Invoke-Expression`,
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("%s wants one shell: bash, zsh, fish or powershell", cmd.CommandPath())
			}
			return cobra.OnlyValidArgs(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(a.stdout, true)
			case "zsh":
				return root.GenZshCompletion(a.stdout)
			case "fish":
				return root.GenFishCompletion(a.stdout, true)
			default:
				return root.GenPowerShellCompletionWithDesc(a.stdout)
			}
		},
	}
}
