package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/client"
	"qnet.dev/qnet/examples"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/node"
)

// devContext is the context qnet dev writes and selects.
const devContext = "dev"

// devContextFile, in a data dir that qnet dev initialised, keeps the dev network's
// context (with the operator's token, which exists nowhere else) so that a later
// qnet dev on the same --data-dir can reuse the network. It is written 0600, as the
// context file is.
const devContextFile = "dev-context.yaml"

// devOptions are the flags of qnet dev.
type devOptions struct {
	dataDir string
	file    string
	apiAddr string
	// addrSet is whether --api-addr was given: only the default address falls back to
	// a free port when it is taken.
	addrSet bool
	timeout time.Duration
}

func (a *app) devCmd() *cobra.Command {
	o := devOptions{apiAddr: defaultAPIAddr, timeout: 2 * time.Minute}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a one-node network on this machine with the example service",
		Long: `Run a whole network of one node in the foreground, for trying qnet and for
developing services: qnet dev creates the network in a temporary directory (or reuses
--data-dir), writes a context named "dev" to the context file and selects it, starts the
node, applies the example service (or the manifests of -f), waits until every replica is
ready and prints where each one answers.

Other qnet commands then work against it from another terminal. Ctrl-C (or SIGTERM)
stops every depot and the node, removes the temporary directory, and removes the "dev"
context again (restoring the one that was there before, if any).

The API listens on 127.0.0.1:7700; when that port is taken, qnet dev says so and uses a
free port instead (an --api-addr you give is used as it is, or fails).`,
		Example: `  qnet dev

  # In another terminal
  qnet get services
  qnet logs hello -f

  # Your own services, and a network that is kept between runs
  qnet dev -f ./manifests/ --data-dir ./devnet`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.timeout <= 0 {
				return usageErr("invalid value %s for --timeout: want a positive duration such as 2m", o.timeout)
			}
			o.addrSet = cmd.Flags().Changed("api-addr")
			return a.runDev(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", "", "keep the network in this directory, reusing it if it holds one (default: a temporary directory, removed at exit)")
	f.StringVarP(&o.file, "filename", "f", "", "apply these manifests (file or directory) instead of the example service")
	f.Var(addrValue{&o.apiAddr}, "api-addr", "address the API listens on")
	f.DurationVar(&o.timeout, "timeout", o.timeout, "how long to wait for every replica to be ready")
	_ = cmd.MarkFlagDirname("data-dir")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	return cmd
}

// runDev runs qnet dev until ctx ends. Everything it starts or writes is undone before
// it returns, in reverse order, whatever happened.
func (a *app) runDev(ctx context.Context, o devOptions) (err error) {
	log := a.logger(slog.LevelWarn)

	// Bad manifests fail before anything starts.
	var svcs []*manifest.Service
	if o.file != "" {
		svcs, err = decodeManifests(a.stderr, o.file)
	} else {
		svcs, err = manifest.Decode("examples/hello.yaml", []byte(examples.Hello))
	}
	if err != nil {
		return err
	}

	dir, madeDir := o.dataDir, false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "qnet-dev-"); err != nil {
			return fmt.Errorf("make a temporary data dir: %w", err)
		}
		madeDir = true
		defer func() {
			if rerr := os.RemoveAll(dir); rerr != nil {
				err = errors.Join(err, fmt.Errorf("remove temporary data dir: %w", rerr))
				return
			}
			fmt.Fprintf(a.stdout, "Removed %s\n", dir)
		}()
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}

	addr := o.apiAddr
	if !o.addrSet && portTaken(addr) {
		// Found out before the network is made, so its genesis records the right address.
		fmt.Fprintf(a.stderr, "Port %s of %s is taken (is another qnet dev or qnet agent running?); using a free port instead.\n", portOf(addr), addr)
		addr = "127.0.0.1:0"
	}
	devCtx, err := a.devNetwork(dir, addr, !madeDir)
	if err != nil {
		return err
	}

	cfg := node.DefaultConfig(dir)
	// A network of one needs no fixed mesh port; any free one will do.
	cfg.APIAddr, cfg.MeshAddr, cfg.Logger = addr, "127.0.0.1:0", log
	if !portFree(cfg.DNSAddr) {
		cfg.DNSAddr = "127.0.0.1:0" // another node of this machine answers on the default
	}
	// A development network takes traffic from this machine only.
	cfg.IngressAddr = "127.0.0.1:7780"
	if !portFree(cfg.IngressAddr) {
		cfg.IngressAddr = "127.0.0.1:0"
	}
	n, err := node.Start(ctx, cfg)
	if err != nil && addr != "127.0.0.1:0" && !o.addrSet && errors.Is(err, syscall.EADDRINUSE) {
		// Taken between the check and the start.
		fmt.Fprintf(a.stderr, "Port %s of %s is taken; using a free port instead.\n", portOf(addr), addr)
		cfg.APIAddr = "127.0.0.1:0"
		n, err = node.Start(ctx, cfg)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting
		}
		return err
	}
	// undoContext, once the context is written, puts the context file back as it was;
	// it runs after the node stopped, so that the context never names a node that is
	// still running.
	var undoContext func() error
	defer func() {
		fmt.Fprintln(a.stdout, "Stopping every depot and the node...")
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
		defer cancel()
		if serr := n.StopDepots(cctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("stop depots: %w", serr))
		}
		if cerr := n.Close(cctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("stop node: %w", cerr))
		}
		if undoContext != nil {
			if uerr := undoContext(); uerr != nil {
				err = errors.Join(err, uerr)
			}
		}
	}()
	if cfg.APIAddr != o.apiAddr {
		fmt.Fprintf(a.stdout, "The node's API listens on %s (port %s was taken).\n", serverURL(n.APIAddr()), portOf(o.apiAddr))
	} else {
		fmt.Fprintf(a.stdout, "The node's API listens on %s.\n", serverURL(n.APIAddr()))
	}
	fmt.Fprintf(a.stdout, "It answers DNS for SERVICE.%s.qnet on %s (udp and tcp), and exposed services on its ingress http://%s/.\n",
		n.Status().Network, n.DNSAddr(), n.IngressAddr())

	pin, err := node.APIKeyPin(n.Key())
	if err != nil {
		return err
	}
	devCtx.Server, devCtx.ServerKey = serverURL(n.APIAddr()), pin
	if !madeDir {
		keep := &client.Config{Contexts: map[string]*client.Context{}}
		keep.Set(devContext, devCtx)
		if err := keep.Save(filepath.Join(dir, devContextFile)); err != nil {
			return err
		}
	}
	if undoContext, err = a.selectDevContext(devCtx); err != nil {
		return err
	}

	cl, err := client.New(devCtx)
	if err != nil {
		return err
	}
	results, err := cl.Apply(ctx, svcs)
	writeApplyResults(a.stdout, results)
	if err != nil {
		return interrupted(ctx, err)
	}
	wctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := waitServices(wctx, cl, a.stdout, results, o.timeout); err != nil {
		return interrupted(ctx, err)
	}
	if err := a.printDevNetwork(ctx, cl, results, dir, madeDir); err != nil {
		return interrupted(ctx, err)
	}
	<-ctx.Done()
	fmt.Fprintln(a.stdout)
	return nil
}

// interrupted drops err when ctx ended: the user stopped qnet dev, which is no failure.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// devNetwork creates the dev network in dir, or finds the context of the one already
// there, and returns the context without server address and pin (known once the node
// listens).
func (a *app) devNetwork(dir, apiAddr string, keep bool) (*client.Context, error) {
	_, err := os.Stat(filepath.Join(dir, node.StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		res, err := node.Init(node.InitOptions{DataDir: dir, Network: devContext, Operator: defaultOperator(), APIAddr: apiAddr})
		if err != nil {
			return nil, err
		}
		opKey, err := filepath.Abs(res.OperatorKey)
		if err != nil {
			return nil, fmt.Errorf("operator key path: %w", err)
		}
		if keep {
			fmt.Fprintf(a.stdout, "Created network %q in %s\n", devContext, dir)
		}
		return &client.Context{Token: res.Token, OperatorKey: opKey, Network: devContext}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	c, err := a.findDevContext(dir)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(a.stdout, "Reusing the network in %s\n", dir)
	return c, nil
}

// findDevContext finds the operator credentials of the network in dir: the context
// qnet dev kept there, else a context of the context file whose operator key is in dir
// (as qnet init writes).
func (a *app) findDevContext(dir string) (*client.Context, error) {
	kept, err := client.LoadConfig(filepath.Join(dir, devContextFile))
	if err != nil {
		return nil, err
	}
	if c, ok := kept.Contexts[devContext]; ok {
		cp := *c
		return &cp, nil
	}
	path := a.configPath()
	cfg, err := client.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	opKey := filepath.Join(dir, node.OperatorKeyFile)
	for _, c := range cfg.Contexts {
		if p, err := filepath.Abs(c.OperatorKey); err == nil && p == opKey {
			cp := *c
			return &cp, nil
		}
	}
	return nil, fmt.Errorf("--data-dir %s holds a network, but neither %s nor a context in %s holds its operator's token: run it with qnet agent --data-dir %s and its own context, or give qnet dev an empty or new --data-dir", dir, devContextFile, path, dir)
}

// selectDevContext writes c as the "dev" context and makes it current. undo puts back
// what was there before: the previous "dev" context or none, and the previous current
// context unless the user chose another meanwhile.
func (a *app) selectDevContext(c *client.Context) (undo func() error, err error) {
	path := a.configPath()
	cfg, err := client.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	prev, existed := cfg.Contexts[devContext]
	prevCurrent := cfg.Current
	cfg.Set(devContext, c)
	if err := cfg.Save(path); err != nil {
		return nil, err
	}
	fmt.Fprintf(a.stdout, "Context %q selected in %s\n", devContext, path)
	return func() error {
		cfg, err := client.LoadConfig(path) // afresh: it may have changed meanwhile
		if err != nil {
			return fmt.Errorf("restore the context file: %w", err)
		}
		stillCurrent := cfg.Current == devContext
		if existed {
			cfg.Contexts[devContext] = prev
		} else {
			cfg.Remove(devContext)
		}
		if stillCurrent {
			cfg.Current = ""
			if _, ok := cfg.Contexts[prevCurrent]; ok {
				cfg.Current = prevCurrent
			}
		}
		if err := cfg.Save(path); err != nil {
			return fmt.Errorf("restore the context file: %w", err)
		}
		if existed {
			fmt.Fprintf(a.stdout, "Restored the previous %q context in %s\n", devContext, path)
		} else {
			fmt.Fprintf(a.stdout, "Removed context %q from %s\n", devContext, path)
		}
		return nil
	}, nil
}

// printDevNetwork says where each replica answers and how to use the network.
func (a *app) printDevNetwork(ctx context.Context, cl *client.Client, results []client.ApplyResult, dir string, madeDir bool) error {
	var curl []string
	fmt.Fprintln(a.stdout)
	for _, r := range results {
		if r.Name == "" {
			continue
		}
		ds, err := cl.Depots(ctx, r.Name)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Service %s (revision %d), %d replica(s):\n", r.Name, r.Revision, len(ds))
		t := newTable(a.stdout)
		for _, d := range ds {
			us := urls(d.Addrs)
			if len(us) == 0 {
				us = []string{"(no ports)"}
			} else if len(curl) == 0 {
				curl = append(curl, us[0])
			}
			fmt.Fprintf(t, "  %s\ton node %s\t%s\n", d.ID, nodeName(d), strings.Join(us, " "))
		}
		if err := t.Flush(); err != nil {
			return err
		}
	}
	q := a.hintPrefix()
	fmt.Fprintf(a.stdout, "\nThe network is running. From another terminal:\n")
	fmt.Fprintf(a.stdout, "  %s get services\n  %s get depots\n", q, q)
	for _, r := range results {
		if r.Name != "" {
			fmt.Fprintf(a.stdout, "  %s logs %s -f\n", q, r.Name)
			break
		}
	}
	for _, u := range curl {
		fmt.Fprintf(a.stdout, "  curl %s/\n", u)
	}
	stop := "every depot and the node are stopped"
	if madeDir {
		stop += ", " + dir + " is removed"
	}
	fmt.Fprintf(a.stdout, "Press Ctrl-C to stop: %s, and the %q context is removed.\n", stop, devContext)
	return nil
}

// hintPrefix is how to call qnet so that it uses the dev context, for the hints printed.
func (a *app) hintPrefix() string {
	q := "qnet"
	if a.configFlag != "" {
		q += " --config " + a.configFlag
	}
	if env := os.Getenv(client.EnvContext); env != "" && env != devContext {
		q += " --context " + devContext
	}
	return q
}

// portTaken reports whether something already listens on addr.
func portTaken(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.Is(err, syscall.EADDRINUSE)
	}
	ln.Close()
	return false
}

// portOf is the port of host:port.
func portOf(addr string) string {
	if _, p, err := net.SplitHostPort(addr); err == nil {
		return p
	}
	return addr
}

// portFree reports whether addr can be listened on for both TCP and UDP now.
func portFree(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}
