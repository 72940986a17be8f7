// Package health checks whether a depot is alive and ready, the way Kubernetes' kubelet
// prober does.
//
// A [Check] is one attempt (HTTP GET, TCP connect or a command); [NewCheck] builds one
// from a manifest probe and the ports, environment and directory of one running depot.
// A [Monitor] runs one check on the probe's schedule, applies the failure and success
// thresholds, and reports each change of state. The agent creates one Monitor per probe
// per depot; nothing here knows about the agent, drivers or the ledger.
package health
