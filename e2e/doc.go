// Package e2e tests QNet from the outside, as a user meets it: its tests run the real
// qnet binary (built once by TestMain) as separate processes — qnet dev, qnet init,
// qnet agent and the commands that operate a network — and check what they print, how
// they exit, which processes they leave and what they write to disk.
//
// The in-process tests of package node cover the same parts through Go calls; these
// cover what only the binary has: the command line, signals, exit codes, the context
// file, and depots that outlive the agent process that started them.
//
// Each test has its own context file ($QNET_CONFIG), data dir and API port. Tests that
// run depots run one after another: nodes on one machine draw depot ports from the same
// range, and two nodes starting at once may pick the same free port.
package e2e
