package cli

import (
	"strconv"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/driver/exec/shim"
	"qnet.dev/qnet/driver/oci"
	wasmshim "qnet.dev/qnet/driver/wasm/shim"
	"qnet.dev/qnet/examples/hello"
)

// exitCode is an error that only sets the process's exit code; whatever it means was
// already said by the command.
type exitCode int

func (e exitCode) Error() string { return "exit status " + strconv.Itoa(int(e)) }

// shimCmd is the exec driver's per-depot supervisor, started by the agent; it is not
// meant to be run by hand, hence hidden.
func (a *app) shimCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "shim RUNTIME-DIR/DEPOT-ID",
		Short:              "Supervise one depot (started by the exec driver, not by hand)",
		Example:            `  qnet shim /var/lib/qnet/depots/hello-1a2b3c4d`,
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := shim.Main(args); code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
}

// ociRunCmd is the oci driver's helper between a depot's shim and runc, which holds the
// depot's published ports; started by the driver, hence hidden.
func (a *app) ociRunCmd() *cobra.Command {
	return &cobra.Command{
		Use:                oci.HelperCommand + " ...",
		Short:              "Run one container and forward its ports (started by the oci driver, not by hand)",
		Example:            "  qnet " + oci.HelperCommand + " (started by the oci driver)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && (args[0] == "--help" || args[0] == "-h") {
				return cmd.Help()
			}
			if code := oci.HelperMain(args); code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
}

// wasmShimCommand is the wasm driver's supervisor subcommand (its default ShimArgs).
const wasmShimCommand = "wasm-shim"

// wasmShimCmd is the wasm driver's per-depot supervisor, started by the agent with a
// connection on file descriptor 3; hence hidden.
func (a *app) wasmShimCmd() *cobra.Command {
	return &cobra.Command{
		Use:                wasmShimCommand,
		Short:              "Run one WebAssembly depot (started by the wasm driver, not by hand)",
		Example:            "  qnet " + wasmShimCommand + " (started by the wasm driver)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && (args[0] == "--help" || args[0] == "-h") {
				return cmd.Help()
			}
			if code := wasmshim.Main(args); code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
}

// exampleHelloCmd runs the example service that qnet dev deploys.
func (a *app) exampleHelloCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "example-hello",
		Short: "Serve the example service on $PORT (what qnet dev runs)",
		Long: `Serve the example service on 127.0.0.1:$PORT until interrupted: GET / says which
depot, service and node answered; /healthz and /ready are its health endpoints. The
agent runs it as the depot of the example manifest; it reads PORT, QNET_DEPOT_ID,
QNET_SERVICE, QNET_NODE, HELLO_WARMUP and HELLO_ALLOW_CRASH from the environment.`,
		Example: `  PORT=8080 qnet example-hello`,
		Hidden:  true,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			return hello.Run(cmd.Context(), a.stdout)
		},
	}
}
