//go:build !linux

package shim

// newSocketWaiter returns the interval waiter: on this system the supervisor has no
// event-based way to wait for the module's sockets (a kqueue one, for Darwin and the
// BSDs, would need the list of the process's sockets, which only Linux's /proc gives
// cheaply), so an idle server is woken to look at its sockets at most every
// maxInterval.
func newSocketWaiter() socketWaiter { return &intervalWaiter{} }
