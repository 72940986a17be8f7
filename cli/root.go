package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/client"
	"qnet.dev/qnet/driver/exec/shim"
	"qnet.dev/qnet/driver/oci"
	wasmshim "qnet.dev/qnet/driver/wasm/shim"
)

// app is what every command shares: where output goes and the global flags.
type app struct {
	stdout, stderr io.Writer
	// configFlag and contextFlag are --config and --context; empty means the
	// environment's or the default.
	configFlag  string
	contextFlag string
	verbose     bool
	// now is the clock that ages are computed against.
	now func() time.Time
}

// NewRoot builds the qnet command tree writing to stdout and stderr. It touches no global
// state until a command runs, so tests can build and run as many as they like.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr, now: time.Now}
	root := &cobra.Command{
		Use:   "qnet",
		Short: "Run and operate a QNet network",
		Long: `qnet runs a node of a QNet network (qnet agent, qnet dev) and operates the network
from the command line: apply service manifests, see what runs where, read logs and
events, and check the ledger.

The operating commands talk to a node's API as described by a context in the context
file (--config, default ~/.qnet/config.yaml); qnet init and qnet dev write one.`,
		Example: `  # A one-node network on this machine running the example service
  qnet dev

  # In another terminal
  qnet get services
  qnet logs hello -f

  # Deploy your own service
  qnet apply -f web.yaml --wait`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			if a.verbose {
				// Parts that log through slog.Default (libraries) log at debug too.
				slog.SetDefault(a.logger(slog.LevelDebug))
			}
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	// The completion command below replaces cobra's default one, so that it has the
	// same help and examples as every other command.
	root.CompletionOptions.DisableDefaultCmd = true

	pf := root.PersistentFlags()
	pf.StringVar(&a.configFlag, "config", "", "context file (default $"+client.EnvConfig+", else ~/.qnet/config.yaml)")
	pf.StringVar(&a.contextFlag, "context", "", "context to use (default $"+client.EnvContext+", else the current context)")
	pf.BoolVarP(&a.verbose, "verbose", "v", false, "log debug messages to stderr")

	root.AddGroup(
		&cobra.Group{ID: "node", Title: "Run a node:"},
		&cobra.Group{ID: "operate", Title: "Operate a network:"},
		&cobra.Group{ID: "other", Title: "Other commands:"},
	)
	add := func(group string, cmds ...*cobra.Command) {
		for _, c := range cmds {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	add("node", a.initCmd(), a.agentCmd(), a.devCmd(), a.testnetCmd())
	add("operate", a.applyCmd(), a.diffCmd(), a.rolloutCmd(), a.getCmd(), a.describeCmd(), a.logsCmd(), a.deleteCmd(),
		a.eventsCmd(), a.ledgerCmd(), a.manifestCmd(), a.tokenCmd(), a.nodeCmd(), a.depotCmd(), a.auditCmd(),
		a.secretCmd(), a.configCmd())
	add("other", a.contextCmd(), a.versionCmd(), a.completionCmd(root))
	root.AddCommand(a.shimCmd(), a.ociRunCmd(), a.wasmShimCmd(), a.exampleHelloCmd())

	root.InitDefaultHelpCmd()
	for _, c := range root.Commands() {
		if c.Name() == "help" {
			c.GroupID = "other"
			c.Example = "  qnet help get services"
		}
	}
	root.SetHelpCommandGroupID("other")
	return root
}

// Execute runs the command line args (without the program name) under ctx and returns
// the process exit code: 0, or 1 after printing "Error: ..." to stderr once (and the
// command's usage when the command line itself was wrong), or the code of the shim.
// Cancelling ctx stops the command as SIGINT does under Main.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRoot(stdout, stderr)
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	fmt.Fprintf(stderr, "Error: %s\n", explain(err))
	var ue *usageError
	if errors.As(err, &ue) && cmd != nil {
		fmt.Fprintf(stderr, "\n%s", cmd.UsageString())
	}
	return 1
}

// Main runs qnet with the process's arguments and returns its exit code.
//
// The first SIGINT or SIGTERM cancels the running command's context; the command then
// cleans up within a bounded time (qnet dev stops every depot it started). A second
// signal does not cut that short, since supervisors and terminals often send signals
// twice (to the process and to its group) and an interrupted clean-up would leave depots
// running; only a third ends the process at once.
func Main() int {
	if len(os.Args) > 1 {
		// The depot supervisors handle their signals themselves and must start fast: they
		// go straight to their entry points, without the command tree or the handler below.
		switch os.Args[1] {
		case "shim":
			return shim.Main(os.Args[2:])
		case oci.HelperCommand:
			return oci.HelperMain(os.Args[2:])
		case wasmShimCommand:
			return wasmshim.Main(os.Args[2:])
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 3)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for n := 1; ; n++ {
			select {
			case <-done:
				return
			case sig := <-sigs:
				switch n {
				case 1:
					cancel()
				case 2:
					fmt.Fprintf(os.Stderr, "qnet: got %v again; still stopping (it takes at most %s). Send it once more to quit at once, leaving whatever is not stopped yet running.\n", sig, stopTimeout)
				default:
					fmt.Fprintf(os.Stderr, "qnet: got %v a third time; quitting at once.\n", sig)
					os.Exit(130)
				}
			}
		}
	}()
	return Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
}

// usageError is a mistake in the command line: Execute shows the command's usage after it.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErr makes a usageError from a message.
func usageErr(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// explain adds what the user can do to errors where that is known.
func explain(err error) string {
	msg := err.Error()
	if errors.Is(err, syscall.ECONNREFUSED) {
		msg += "\n(is the node running? start one with `qnet dev`, or `qnet agent --data-dir DIR`; `qnet context show` says which node this context names)"
	}
	return msg
}

// logger logs to stderr at level, or at debug with --verbose.
func (a *app) logger(level slog.Level) *slog.Logger {
	if a.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
}

// configPath is the context file: --config, else $QNET_CONFIG, else ~/.qnet/config.yaml.
func (a *app) configPath() string {
	if a.configFlag != "" {
		return a.configFlag
	}
	return client.DefaultConfigPath()
}

// client returns a client for the chosen context.
func (a *app) client() (*client.Client, error) {
	path := a.configPath()
	cfg, err := client.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	name, c, err := cfg.Resolve(a.contextFlag)
	if err != nil {
		return nil, fmt.Errorf("%w (context file %s)", err, path)
	}
	cl, err := client.New(c)
	if err != nil {
		return nil, fmt.Errorf("context %q in %s: %w", name, path, err)
	}
	a.logger(slog.LevelWarn).Debug("using context", "context", name, "server", c.Server, "file", path)
	return cl, nil
}

// groupRun is the RunE of commands that only hold subcommands: with no argument it
// shows help; with one it is not a subcommand of, it says so and what would be.
func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return usageErr("unknown command %q for %q: want one of %s", args[0], cmd.CommandPath(), strings.Join(names, ", "))
}

// exactArgs wants exactly the named arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == len(names) {
			return nil
		}
		if len(names) == 0 {
			return usageErr("%s takes no arguments, got %q", cmd.CommandPath(), args)
		}
		return usageErr("%s wants %s, got %d argument(s)", cmd.CommandPath(), strings.Join(names, " "), len(args))
	}
}

// rangeArgs wants between lo and hi arguments, described by what.
func rangeArgs(lo, hi int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= lo && len(args) <= hi {
			return nil
		}
		return usageErr("%s wants %s, got %d argument(s)", cmd.CommandPath(), what, len(args))
	}
}
