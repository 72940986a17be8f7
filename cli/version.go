package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/version"
)

// versionInfo is what qnet version prints.
type versionInfo struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

func (a *app) versionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of qnet",
		Example: `  qnet version
  qnet version -o json`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := versionInfo{Version: version.Version, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
			if output != formatText {
				return writeDoc(a.stdout, output, v)
			}
			_, err := fmt.Fprintf(a.stdout, "qnet %s (%s, %s/%s)\n", v.Version, v.Go, v.OS, v.Arch)
			return err
		},
	}
	outputFlag(cmd, &output, formatText, formatJSON, formatYAML)
	return cmd
}
