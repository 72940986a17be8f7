// Package testnet runs a local network of real `qnet agent` processes on one machine,
// for trying a deployment before it goes live and for end-to-end tests: `qnet testnet
// up` creates the network (qnet init for the first node, join tokens for the others),
// starts every agent as a detached process with its own data dir and log file, and
// records what it made in a state file, through which later commands (other
// processes) kill and restart nodes, cut the network in two and heal it, and take it
// all down.
//
// Nodes listen on 127.0.0.1 with ports of their own, or, with network namespaces
// (--netns, as root), each on an address of its own behind a bridge. How a partition
// cuts traffic in each case is described in partition.go.
package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/client"
	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/node"
)

// DefaultName is the name of a testnet when none is given.
const DefaultName = "local"

// ConfigFile is the testnet's own context file, in its directory: a context per node,
// named after it ("node1", ...), node1's being current.
const ConfigFile = "config.yaml"

// lockFile serialises the commands that change a testnet.
const lockFile = ".lock"

// gidBase is where the group IDs of loopback testnets' agents start: far above the
// IDs of users and groups of the system.
const gidBase = 0x7E000000

// ContextName is the name of a testnet's context in the user's context file.
func ContextName(name string) string { return "testnet-" + name }

// DefaultDir is the directory of the testnet called name: ~/.qnet/testnets/NAME.
func DefaultDir(name string) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("testnet directory: %w (give one with --dir)", err)
	}
	return filepath.Join(home, ".qnet", "testnets", name), nil
}

// Options say what testnet Up makes.
type Options struct {
	// Name names the testnet (default DefaultName) and its network.
	Name string
	// Dir is where it lives (default DefaultDir(Name)); it must not exist or be empty.
	Dir string
	// Nodes is how many nodes it has, 1 to MaxNodes.
	Nodes int
	// NetNS puts every node in a network namespace of its own (needs root and ip).
	NetNS bool
	// Binary is the qnet executable (default: this process's executable).
	Binary string
	// UserConfig is the user's context file, to which the context
	// ContextName(Name) is added and made current (default client.DefaultConfigPath()).
	UserConfig string
	// Timeout bounds the whole start (default 2 minutes).
	Timeout time.Duration
	// Progress, when set, is told what happens, line by line.
	Progress io.Writer
}

// validate fills in defaults and checks the options.
func (o *Options) validate() error {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if err := ValidateName(o.Name); err != nil {
		return err
	}
	if o.Nodes < 1 || o.Nodes > MaxNodes {
		return fmt.Errorf("--nodes %d: want 1 to %d", o.Nodes, MaxNodes)
	}
	var err error
	if o.Dir == "" {
		if o.Dir, err = DefaultDir(o.Name); err != nil {
			return err
		}
	}
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	if o.Binary == "" {
		if o.Binary, err = os.Executable(); err != nil {
			return fmt.Errorf("find the qnet executable: %w", err)
		}
	}
	if o.Binary, err = filepath.Abs(o.Binary); err != nil {
		return fmt.Errorf("qnet executable: %w", err)
	}
	if fi, err := os.Stat(o.Binary); err != nil || fi.IsDir() {
		return fmt.Errorf("qnet executable %s: not a file", o.Binary)
	}
	if o.UserConfig == "" {
		o.UserConfig = client.DefaultConfigPath()
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.NetNS {
		return checkNetNS()
	}
	return nil
}

// Testnet is an open testnet: its directory and state. Commands that change it hold
// its lock until Close.
type Testnet struct {
	Dir   string
	State *State

	lock *os.File

	mu      sync.Mutex
	clients map[string]*client.Client
}

// Open opens the testnet in dir. With exclusive, it takes the testnet's lock first, so
// that no other command changes it meanwhile; Close releases it.
func Open(dir string, exclusive bool) (*Testnet, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("testnet directory: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, StateFile)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s (start one with qnet testnet up)", ErrNoTestnet, dir)
	}
	t := &Testnet{Dir: dir}
	if exclusive {
		if err := t.acquire(); err != nil {
			return nil, err
		}
	}
	if t.State, err = LoadState(dir); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// acquire takes the testnet's lock.
func (t *Testnet) acquire() error {
	f, err := os.OpenFile(filepath.Join(t.Dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock testnet: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("another qnet testnet command is changing the testnet in %s now; try again when it is done", t.Dir)
		}
		return fmt.Errorf("lock testnet: %w", err)
	}
	t.lock = f
	return nil
}

// Close releases the testnet's lock, if held.
func (t *Testnet) Close() error {
	if t.lock == nil {
		return nil
	}
	err := t.lock.Close() // closing drops the flock
	t.lock = nil
	return err
}

func (t *Testnet) save() error { return SaveState(t.Dir, t.State) }

// client is a client of node n's API, through its context in the testnet's context file.
func (t *Testnet) client(n *Node) (*client.Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.clients[n.Name]; ok {
		return c, nil
	}
	path := filepath.Join(t.Dir, ConfigFile)
	cfg, err := client.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	ctx, ok := cfg.Contexts[n.Name]
	if !ok {
		return nil, fmt.Errorf("%s has no context in %s (its agent never made its key)", n.Name, path)
	}
	c, err := client.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	if t.clients == nil {
		t.clients = map[string]*client.Client{}
	}
	t.clients[n.Name] = c
	return c, nil
}

// Up creates and starts a testnet as o says, and returns once every node is a member
// of the network and alive in the view of every other. When it fails, it stops what it
// started and leaves the directory, with the nodes' logs, for `down` to remove.
func Up(ctx context.Context, o Options) (_ *Testnet, err error) {
	if err := supported(); err != nil {
		return nil, err
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if err := emptyDir(o.Dir); err != nil {
		return nil, err
	}
	t := &Testnet{Dir: o.Dir}
	if err := t.acquire(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			t.abort(ctx)
			t.Close()
			err = fmt.Errorf("%w\n(the nodes' logs are in %s; qnet testnet down --dir %s removes the testnet)", err, filepath.Join(o.Dir, "node*", "agent.log"), o.Dir)
		}
	}()
	st := &State{Version: stateVersion, Name: o.Name, Network: o.Name, Binary: o.Binary, UserConfig: o.UserConfig}
	if err := layout(st, o); err != nil {
		return nil, err
	}
	t.State = st
	if err := t.save(); err != nil {
		return nil, err
	}
	if st.NetNS != nil {
		fmt.Fprintf(o.Progress, "Making %d network namespaces on bridge %s (%s)\n", len(st.Nodes), st.NetNS.Bridge, st.NetNS.Subnet)
		if err := setupNetNS(ctx, st); err != nil {
			return nil, err
		}
	}
	first := &st.Nodes[0]
	if err := t.initFirst(ctx, first); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Progress, "%s: created network %q (node %s)\n", first.Name, st.Network, first.ID)
	if err := t.startAgent(first, nil); err != nil {
		return nil, err
	}
	if err := t.waitReady(ctx, first); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Progress, "%s: running (pid %d), API at %s\n", first.Name, first.PID, first.API)
	c1, err := t.client(first)
	if err != nil {
		return nil, err
	}
	var joining []*Node
	for i := 1; i < len(st.Nodes); i++ {
		n := &st.Nodes[i]
		tok, _, err := c1.CreateToken(ctx, 30*time.Minute, 1)
		if err != nil {
			return nil, fmt.Errorf("create a join token for %s through %s: %w", n.Name, first.Name, err)
		}
		if err := t.startAgent(n, []string{"--join", first.Mesh, "--token", tok, "--name", n.Name}); err != nil {
			return nil, err
		}
		joining = append(joining, n)
	}
	if err := t.save(); err != nil {
		return nil, err
	}
	if len(joining) > 0 {
		fmt.Fprintf(o.Progress, "Joining %d node(s) through %s\n", len(joining), first.Name)
	}
	if err := t.waitReady(ctx, joining...); err != nil {
		return nil, err
	}
	for _, n := range joining {
		fmt.Fprintf(o.Progress, "%s: joined (pid %d, node %s), API at %s\n", n.Name, n.PID, n.ID, n.API)
	}
	if err := t.save(); err != nil {
		return nil, err
	}
	if err := t.waitAlive(ctx); err != nil {
		return nil, err
	}
	if err := t.addUserContext(); err != nil {
		return nil, err
	}
	return t, nil
}

// emptyDir makes dir, or checks that it is empty.
func emptyDir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, StateFile)); err == nil {
		return fmt.Errorf("a testnet is already in %s: see it with qnet testnet status, or remove it with qnet testnet down", dir)
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		return fmt.Errorf("testnet directory: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("testnet directory %s is not empty: choose another --dir, or another --name", dir)
	}
	return nil
}

// layout decides every node's directories, addresses and group ID.
func layout(st *State, o Options) error {
	var apis, meshes []string
	if o.NetNS {
		subnet, err := freeSubnet()
		if err != nil {
			return err
		}
		bridge, namespaces, veths := netnsNames(o.Name, o.Dir, o.Nodes)
		st.NetNS = &NetNS{Bridge: bridge, Subnet: subnet.String()}
		for i := 1; i <= o.Nodes; i++ {
			host := hostIn(subnet, i)
			apis = append(apis, net.JoinHostPort(host, fmt.Sprint(nsAPIPort)))
			meshes = append(meshes, net.JoinHostPort(host, fmt.Sprint(nsMeshPort)))
		}
		for i := range o.Nodes {
			st.Nodes = append(st.Nodes, Node{Namespace: namespaces[i], Veth: veths[i]})
		}
	} else {
		ports, err := freePorts(2 * o.Nodes)
		if err != nil {
			return err
		}
		for i := range o.Nodes {
			apis = append(apis, ports[2*i])
			meshes = append(meshes, ports[2*i+1])
		}
		st.Nodes = make([]Node, o.Nodes)
	}
	// Agents of a loopback testnet get group IDs of their own, by which a partition
	// tells their connections apart; only root may give them.
	gids := !o.NetNS && os.Geteuid() == 0
	base := uint32(gidBase) + (dirHash(o.Dir)%0x10000)*256
	for i := range st.Nodes {
		n := &st.Nodes[i]
		n.Index, n.Name = i+1, nodeName(i+1)
		dir := filepath.Join(o.Dir, n.Name)
		n.DataDir, n.Log = filepath.Join(dir, "data"), filepath.Join(dir, "agent.log")
		n.API, n.Mesh = apis[i], meshes[i]
		if gids {
			n.GID = base + uint32(i+1)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("testnet: %w", err)
		}
	}
	return nil
}

// freePorts returns count distinct addresses on 127.0.0.1 whose ports are free now.
func freePorts(count int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var out []string
	for range count {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find free ports: %w", err)
		}
		lns = append(lns, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// initFirst runs `qnet init` for the first node, with the testnet's context file.
func (t *Testnet) initFirst(ctx context.Context, n *Node) error {
	cfg := filepath.Join(t.Dir, ConfigFile)
	cmd := exec.CommandContext(ctx, t.State.Binary, "--config", cfg, "--context", n.Name,
		"init", "--data-dir", n.DataDir, "--network", t.State.Network, "--api-addr", n.API, "--mesh-addr", n.Mesh, "--node-name", n.Name)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("qnet init for %s: %w\n%s", n.Name, err, out)
	}
	key, err := identity.Load(filepath.Join(n.DataDir, node.NodeKeyFile))
	if err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	n.ID = key.ID()
	return t.save()
}

// startAgent starts node n's agent, detached: in a session of its own, output appended
// to its log file, in its namespace and with its group ID when it has them.
func (t *Testnet) startAgent(n *Node, extra []string) error {
	logf, err := os.OpenFile(n.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%s: log file: %w", n.Name, err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- qnet testnet: starting the agent of %s at %s\n", n.Name, time.Now().Format(time.RFC3339))
	args := []string{"agent", "--data-dir", n.DataDir, "--api-addr", n.API, "--mesh-addr", n.Mesh}
	if n.Namespace == "" {
		// The nodes share this loopback: each answers DNS on a port of its own (qnet
		// testnet status and qnet status say which).
		args = append(args, "--dns-addr", "127.0.0.1:0", "--ingress-addr", "127.0.0.1:0")
	}
	args = append(args, extra...)
	cmd := exec.Command(t.State.Binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if n.GID != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(os.Getuid()), Gid: n.GID, Groups: []uint32{}}
	}
	if err := startIn(n.Namespace, cmd); err != nil {
		return fmt.Errorf("start the agent of %s: %w", n.Name, err)
	}
	n.PID = cmd.Process.Pid
	if p, ok := readProc(n.PID); ok {
		n.PIDStart = p.start
	}
	// Nobody waits for the agent: it outlives this process. Until this process exits,
	// an agent that dies stays a zombie, which running() counts as dead.
	_ = cmd.Process.Release()
	return nil
}

// waitReady waits until each node's agent answers on its API and knows an ordering
// leader, recording its ID and adding its context to the testnet's context file; it
// fails at once when an agent exits.
func (t *Testnet) waitReady(ctx context.Context, nodes ...*Node) error {
	pending := slices.Clone(nodes)
	for len(pending) > 0 {
		var still []*Node
		for _, n := range pending {
			ok, err := t.ready(ctx, n)
			if err != nil {
				return err
			}
			if !ok {
				still = append(still, n)
			}
		}
		pending = still
		if len(pending) == 0 {
			break
		}
		if err := pause(ctx); err != nil {
			var names []string
			for _, n := range pending {
				names = append(names, n.Name)
			}
			return fmt.Errorf("%s not ready: %w", strings.Join(names, ", "), err)
		}
	}
	return nil
}

// ready checks once whether node n is ready (see waitReady).
func (t *Testnet) ready(ctx context.Context, n *Node) (bool, error) {
	if !running(n.PID, n.PIDStart) {
		return false, fmt.Errorf("the agent of %s (pid %d) exited; the end of its log %s:\n%s", n.Name, n.PID, n.Log, tail(n.Log, 20))
	}
	if _, err := t.client(n); err != nil {
		// A joining agent makes its key first thing; once it is there the node's API
		// can be pinned.
		key, err := identity.Load(filepath.Join(n.DataDir, node.NodeKeyFile))
		if err != nil {
			return false, nil
		}
		if err := t.addNodeContext(n, key); err != nil {
			return false, err
		}
	}
	c, err := t.client(n)
	if err != nil {
		return false, err
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := c.Status(cctx)
	if err != nil || st.Leader == "" {
		return false, nil
	}
	n.ID = st.Node
	return true, nil
}

// addNodeContext adds node n's context to the testnet's context file: node1's, with
// the server and pin of n.
func (t *Testnet) addNodeContext(n *Node, key *identity.Key) error {
	path := filepath.Join(t.Dir, ConfigFile)
	cfg, err := client.LoadConfig(path)
	if err != nil {
		return err
	}
	first, ok := cfg.Contexts[t.State.Nodes[0].Name]
	if !ok {
		return fmt.Errorf("the testnet's context file %s has no context for %s", path, t.State.Nodes[0].Name)
	}
	pin, err := node.APIKeyPin(key)
	if err != nil {
		return err
	}
	c := *first
	c.Server, c.ServerKey = "https://"+n.API, pin
	cfg.Contexts[n.Name] = &c
	return cfg.Save(path)
}

// waitAlive waits until every node's API lists every node, alive.
func (t *Testnet) waitAlive(ctx context.Context) error {
	want := len(t.State.Nodes)
	for {
		last := ""
		for i := range t.State.Nodes {
			n := &t.State.Nodes[i]
			c, err := t.client(n)
			if err != nil {
				return err
			}
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			nodes, err := c.Nodes(cctx)
			cancel()
			alive := 0
			for _, m := range nodes {
				if m.Alive {
					alive++
				}
			}
			if err != nil || len(nodes) != want || alive != want {
				last = fmt.Sprintf("%s sees %d node(s), %d alive (want %d)", n.Name, len(nodes), alive, want)
				if err != nil {
					last = fmt.Sprintf("%s: %v", n.Name, err)
				}
				break
			}
		}
		if last == "" {
			return nil
		}
		if err := pause(ctx); err != nil {
			return fmt.Errorf("waiting for every node to be alive: %w; last: %s", err, last)
		}
	}
}

// addUserContext adds the testnet's context, node1's, to the user's context file and
// makes it current.
func (t *Testnet) addUserContext() error {
	cfg, err := client.LoadConfig(filepath.Join(t.Dir, ConfigFile))
	if err != nil {
		return err
	}
	first, ok := cfg.Contexts[t.State.Nodes[0].Name]
	if !ok {
		return fmt.Errorf("the testnet's context file has no context for %s", t.State.Nodes[0].Name)
	}
	user, err := client.LoadConfig(t.State.UserConfig)
	if err != nil {
		return err
	}
	c := *first
	user.Set(ContextName(t.State.Name), &c)
	if err := user.Save(t.State.UserConfig); err != nil {
		return fmt.Errorf("add context %s: %w", ContextName(t.State.Name), err)
	}
	return nil
}

// removeUserContext removes the testnet's context from the user's context file, when
// it still names this testnet's first node.
func (t *Testnet) removeUserContext() error {
	if t.State.UserConfig == "" {
		return nil
	}
	mine, err := client.LoadConfig(filepath.Join(t.Dir, ConfigFile))
	if err != nil {
		return err
	}
	first, ok := mine.Contexts[t.State.Nodes[0].Name]
	if !ok {
		return nil
	}
	user, err := client.LoadConfig(t.State.UserConfig)
	if err != nil {
		return err
	}
	name := ContextName(t.State.Name)
	c, ok := user.Contexts[name]
	if !ok || c.Server != first.Server || c.ServerKey != first.ServerKey {
		return nil
	}
	user.Remove(name)
	return user.Save(t.State.UserConfig)
}

// abort stops what a failed Up started.
func (t *Testnet) abort(ctx context.Context) {
	if t.State == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for i := range t.State.Nodes {
		_, _ = killNode(ctx, &t.State.Nodes[i])
	}
	if t.State.NetNS != nil {
		_ = teardownNetNS(ctx, t.State)
	}
	_ = t.save()
}

// pause waits a little before a condition is checked again, or until ctx ends.
func pause(ctx context.Context) error {
	tm := time.NewTimer(100 * time.Millisecond)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// tail returns the last lines of a file, at most max.
func tail(path string, max int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	const window = 8 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		_, _ = f.Seek(fi.Size()-window, io.SeekStart)
	}
	data, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > max {
		lines = lines[len(lines)-max:]
	}
	return strings.Join(lines, "\n")
}

// NodeStatus is a node's process and its view of the network.
type NodeStatus struct {
	Index     int    `json:"index"`
	Name      string `json:"name"`
	ID        string `json:"id,omitempty"`
	PID       int    `json:"pid,omitempty"`
	Running   bool   `json:"running"`
	API       string `json:"api"`
	Mesh      string `json:"mesh"`
	Namespace string `json:"namespace,omitempty"`
	// Reachable says the node's API answered; the fields below come from it.
	Reachable bool `json:"reachable"`
	// Leader is the ordering leader the node knows ("" for none).
	Leader    string `json:"leader,omitempty"`
	IsLeader  bool   `json:"isLeader"`
	Validator bool   `json:"validator"`
	Height    uint64 `json:"height,omitempty"`
	Tip       string `json:"tip,omitempty"`
	// Side is the node's side of the partition in place (1 or 2), or 0.
	Side int `json:"side,omitempty"`
	// DNS and Ingress are where the node answers DNS and takes outside HTTP traffic.
	DNS     string `json:"dns,omitempty"`
	Ingress string `json:"ingress,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Status reports every node's process and, from its API, its view of the network.
func (t *Testnet) Status(ctx context.Context) []NodeStatus {
	out := make([]NodeStatus, len(t.State.Nodes))
	var wg sync.WaitGroup
	for i := range t.State.Nodes {
		n := &t.State.Nodes[i]
		s := &out[i]
		*s = NodeStatus{Index: n.Index, Name: n.Name, ID: n.ID, PID: n.PID, Running: running(n.PID, n.PIDStart), API: n.API, Mesh: n.Mesh, Namespace: n.Namespace}
		if p := t.State.Partition; p != nil {
			for side, g := range p.Groups {
				if slices.Contains(g, n.Index) {
					s.Side = side + 1
				}
			}
		}
		if !s.Running {
			continue
		}
		wg.Go(func() {
			st, err := t.status(ctx, n)
			if err != nil {
				s.Error = err.Error()
				return
			}
			s.Reachable, s.Leader, s.IsLeader, s.Height, s.Tip = true, st.Leader, st.IsLeader, st.Height, st.Tip
			s.DNS, s.Ingress = st.DNSAddr, st.IngressAddr
			s.Validator = slices.Contains(st.Validators, st.Node)
		})
	}
	wg.Wait()
	return out
}

func (t *Testnet) status(ctx context.Context, n *Node) (*api.Status, error) {
	c, err := t.client(n)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return c.Status(ctx)
}

// Kill kills node ref's agent and every process of its depots with SIGKILL, as a
// machine that loses power would, and returns the node and the PIDs killed.
func (t *Testnet) Kill(ctx context.Context, ref string) (*Node, []int, error) {
	n, err := t.State.Lookup(ref)
	if err != nil {
		return nil, nil, err
	}
	if !running(n.PID, n.PIDStart) && len(nodeProcs(n, 0, allProcs())) == 0 {
		return n, nil, fmt.Errorf("%s is not running: its agent (pid %d) has exited and no depot of it runs (qnet testnet restart %d starts it)", n.Name, n.PID, n.Index)
	}
	killed, err := killNode(ctx, n)
	return n, killed, err
}

// Restart starts node ref's agent again on its data dir, and waits until it answers
// and knows an ordering leader.
func (t *Testnet) Restart(ctx context.Context, ref string) (*Node, error) {
	n, err := t.State.Lookup(ref)
	if err != nil {
		return nil, err
	}
	if running(n.PID, n.PIDStart) {
		return n, fmt.Errorf("%s is running (pid %d): kill it first (qnet testnet kill %d)", n.Name, n.PID, n.Index)
	}
	if _, err := os.Stat(filepath.Join(n.DataDir, node.StateFile)); err != nil {
		return n, fmt.Errorf("%s never became a node (no %s in %s): take the testnet down and up again", n.Name, node.StateFile, n.DataDir)
	}
	if err := t.startAgent(n, nil); err != nil {
		return n, err
	}
	if err := t.save(); err != nil {
		return n, err
	}
	if err := t.waitReady(ctx, n); err != nil {
		return n, err
	}
	return n, t.save()
}

// Partition cuts the mesh traffic between two groups of nodes, in both directions,
// replacing any partition in place. groups are ParseGroups' result; a single group
// stands against every other node. It returns the two sides' node indexes.
func (t *Testnet) Partition(ctx context.Context, groups [][]string) ([2][]int, error) {
	sides, err := resolveGroups(t.State, groups)
	if err != nil {
		return sides, err
	}
	if err := applyPartition(ctx, t.State, t.Dir, sides); err != nil {
		return sides, err
	}
	t.State.Partition = &Partition{Groups: sides}
	return sides, t.save()
}

// Heal removes the partition in place; it reports whether there was one.
func (t *Testnet) Heal(ctx context.Context) (bool, error) {
	had := t.State.Partition != nil
	if err := healPartition(ctx, t.State, t.Dir); err != nil {
		return had, fmt.Errorf("heal: %w", err)
	}
	t.State.Partition = nil
	return had, t.save()
}

// Down kills every node with its depots, removes the partition, the namespaces, the
// nodes' cgroups and the testnet's context from the user's context file, and, unless
// keep, the testnet's directory.
func (t *Testnet) Down(ctx context.Context, keep bool) error {
	var errs []error
	for i := range t.State.Nodes {
		if _, err := killNode(ctx, &t.State.Nodes[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := healPartition(ctx, t.State, t.Dir); err != nil {
		errs = append(errs, fmt.Errorf("remove the partition: %w", err))
	} else {
		t.State.Partition = nil
	}
	if t.State.NetNS != nil {
		if err := teardownNetNS(ctx, t.State); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range t.State.Nodes {
		if n.ID != "" {
			removeCgroups("qnet-" + n.ID)
		}
	}
	if err := t.removeUserContext(); err != nil {
		errs = append(errs, fmt.Errorf("remove context %s: %w", ContextName(t.State.Name), err))
	}
	if len(errs) > 0 {
		_ = t.save()
		return errors.Join(errs...)
	}
	if keep {
		return t.save()
	}
	if err := os.RemoveAll(t.Dir); err != nil {
		return fmt.Errorf("remove %s: %w", t.Dir, err)
	}
	return nil
}
