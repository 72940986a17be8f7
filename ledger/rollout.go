package ledger

import "time"

// Transaction types of rollouts.
const (
	// TxRolloutStatus is the ordering leader's word on how a service's rollout stands:
	// complete, failed, or reverted to the last good revision. Nodes sign it.
	TxRolloutStatus TxType = "rollout.status"
	// TxRolloutPause stops a service's rollout where it is; operators sign it.
	TxRolloutPause TxType = "rollout.pause"
	// TxRolloutResume lets a paused rollout go on; operators sign it.
	TxRolloutResume TxType = "rollout.resume"
)

// RolloutPhase is where a service's rollout is.
type RolloutPhase string

// Rollout phases.
const (
	// RolloutProgressing: replicas of the target revision replace the others.
	RolloutProgressing RolloutPhase = "progressing"
	// RolloutPaused: an operator paused it; nothing is added or removed for it.
	RolloutPaused RolloutPhase = "paused"
	// RolloutComplete: every replica runs the target revision and is ready; the target
	// is now the stable revision.
	RolloutComplete RolloutPhase = "complete"
	// RolloutFailed: the target made no progress within its deadline; the replicas stay
	// as they are until the next apply or undo.
	RolloutFailed RolloutPhase = "failed"
	// RolloutReverted: the target failed and the service runs its stable revision again.
	RolloutReverted RolloutPhase = "reverted"
)

// RolloutStatus reports a change of phase of the rollout of Service to Revision (the
// revision it was rolling out when the leader decided; a report about any other
// revision is stale and takes no effect). Phase is complete, failed or reverted.
type RolloutStatus struct {
	Service  string       `json:"service"`
	Revision uint64       `json:"revision"`
	Phase    RolloutPhase `json:"phase"`
	Message  string       `json:"message,omitempty"`
	// At is when the leader decided, by its clock.
	At time.Time `json:"at"`
}

// RolloutControl pauses or resumes the rollout of a service.
type RolloutControl struct {
	Service string `json:"service"`
	// Reason, optional, says why, for people reading the ledger.
	Reason string `json:"reason,omitempty"`
}
