package apiserver

import (
	"fmt"

	"qnet.dev/qnet/ledger"
)

// rolloutSummary says in one line what a rollout transaction does; ok is false for
// other types.
func rolloutSummary(t *ledger.Tx) (summary string, ok bool) {
	switch t.Type {
	case ledger.TxRolloutStatus:
		var p ledger.RolloutStatus
		if t.Decode(&p) == nil {
			return fmt.Sprintf("rollout of %s revision %d %s", p.Service, p.Revision, p.Phase), true
		}
	case ledger.TxRolloutPause, ledger.TxRolloutResume:
		var p ledger.RolloutControl
		if t.Decode(&p) == nil {
			verb := "pause"
			if t.Type == ledger.TxRolloutResume {
				verb = "resume"
			}
			return fmt.Sprintf("%s the rollout of %s", verb, p.Service), true
		}
	}
	return "", false
}
