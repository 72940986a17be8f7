// Command qnet is QNet in one binary: the node agent, the command line that operates a
// network, and the helpers the agent runs (the depot shim, the example service). All of
// it lives in package cli.
package main

import (
	"os"

	"qnet.dev/qnet/cli"
)

func main() { os.Exit(cli.Main()) }
