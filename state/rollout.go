package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
)

// Rollout is how the rollout of a service stands: which revision its replicas are
// driven to, which revision was last fully rolled out, and the phase. The state machine
// starts one with every new revision; the ordering leader's rollout.status reports end
// it (complete, failed, reverted), and operators pause and resume it.
type Rollout struct {
	// Applied is the newest revision of the service when this rollout began: a newer
	// revision starts a new rollout (the newest always wins).
	Applied uint64 `json:"applied"`
	// Revision is the revision the replicas are driven to: Applied, or Stable once a
	// failed rollout was reverted.
	Revision uint64 `json:"revision"`
	// Stable is the last revision that was fully rolled out (0 when none yet).
	Stable uint64 `json:"stable"`
	// Failed is the revision that failed, once reverted.
	Failed uint64              `json:"failed,omitempty"`
	Phase  ledger.RolloutPhase `json:"phase"`
	// Since is when the phase began (a block's time). The progress deadline counts from
	// it, or from the last new replica that became ready, whichever is later.
	Since   time.Time `json:"since"`
	Message string    `json:"message,omitempty"`
}

// CurrentRollout is the rollout of s: its record, or the one a new revision made
// without a record begins (a record written before that revision, or none at all).
func (s *Service) CurrentRollout() Rollout {
	ro := s.Rollout
	switch {
	case ro != nil && ro.Applied == s.Revision:
		return *ro
	case ro == nil && s.Revision > 1:
		// A service from before rollouts were recorded: it runs what it has.
		return Rollout{Applied: s.Revision, Revision: s.Revision, Stable: s.Revision, Phase: ledger.RolloutComplete, Since: s.Updated}
	}
	return nextRollout(ro, s.Revision, s.Updated)
}

// RunRevision is the revision the replicas of s are driven to.
func (s *Service) RunRevision() uint64 { return s.CurrentRollout().Revision }

// nextRollout is the rollout a new revision rev begins at time at, after prev (nil for
// a new service). A rollout that had not completed leaves its stable revision to the
// next one: the newest revision wins, and the last good one stays what a revert goes
// back to. A paused rollout stays paused with its new target.
func nextRollout(prev *Rollout, rev uint64, at time.Time) Rollout {
	next := Rollout{Applied: rev, Revision: rev, Phase: ledger.RolloutProgressing, Since: at}
	if prev == nil {
		return next
	}
	next.Stable = prev.Stable
	if prev.Phase == ledger.RolloutComplete {
		next.Stable = prev.Revision
	}
	if prev.Phase == ledger.RolloutPaused {
		next.Phase = ledger.RolloutPaused
		next.Message = "paused: qnet rollout resume to go on"
	}
	if prev.Phase == ledger.RolloutProgressing || prev.Phase == ledger.RolloutPaused {
		next.Message = fmt.Sprintf("revision %d replaces revision %d, which had not finished rolling out", rev, prev.Applied)
		if prev.Phase == ledger.RolloutPaused {
			next.Message += "; still paused: qnet rollout resume to go on"
		}
	}
	return next
}

// rolloutStarted records, as an event, that a new revision replaced a rollout that had
// not finished: the newest wins, and people following the older one must see it.
func (a *applier) rolloutStarted(service string, prev *Rollout, next Rollout) {
	if prev != nil && (prev.Phase == ledger.RolloutProgressing || prev.Phase == ledger.RolloutPaused) {
		a.event("rollout.superseded", service, "", "", fmt.Sprintf("%s: %s", service, next.Message))
	}
}

// applyRollout applies the rollout transactions; ok is false for any other type.
func (a *applier) applyRollout(t *ledger.Tx) (ok bool, err error) {
	switch t.Type {
	case ledger.TxRolloutStatus:
		return true, a.rolloutStatus(t)
	case ledger.TxRolloutPause, ledger.TxRolloutResume:
		return true, a.rolloutControl(t)
	}
	return false, nil
}

func (a *applier) rolloutStatus(t *ledger.Tx) error {
	var p ledger.RolloutStatus
	if err := t.Decode(&p); err != nil {
		return err
	}
	svc, ro, err := checkRolloutStatus(a.view, a.signer(t), &p)
	if err != nil {
		return err
	}
	ro.Phase, ro.Since, ro.Message = p.Phase, a.block.Time, p.Message
	switch p.Phase {
	case ledger.RolloutComplete:
		ro.Stable = ro.Revision
	case ledger.RolloutReverted:
		ro.Failed, ro.Revision = ro.Revision, ro.Stable
	}
	svc.Rollout = &ro
	if err := putJSON(a.bucket(bucketServices), []byte(svc.Name), svc); err != nil {
		return err
	}
	msg := fmt.Sprintf("rollout of %s revision %d %s", svc.Name, p.Revision, p.Phase)
	if p.Phase == ledger.RolloutReverted {
		msg = fmt.Sprintf("rollout of %s revision %d failed; reverted to revision %d", svc.Name, p.Revision, ro.Revision)
	}
	if p.Message != "" {
		msg += ": " + p.Message
	}
	a.event("rollout."+string(p.Phase), svc.Name, "", "", msg)
	return nil
}

// checkRolloutStatus checks a leader's report against the service's rollout: it must
// come from a validator, be about the rollout that runs now (a report on an older
// revision is stale), and move it to a phase that follows.
func checkRolloutStatus(v chainView, signer ledger.KeyInfo, p *ledger.RolloutStatus) (Service, Rollout, error) {
	if !signer.Validator {
		return Service{}, Rollout{}, fmt.Errorf("rollout status is decided by validators; node %s is not one", signer.Owner)
	}
	var svc Service
	if ok, err := getJSON(v.tx.Bucket(bucketServices), []byte(p.Service), &svc); err != nil {
		return svc, Rollout{}, err
	} else if !ok {
		return svc, Rollout{}, fmt.Errorf("%w: service %q", ErrNotFound, p.Service)
	}
	ro := svc.CurrentRollout()
	if p.Revision != ro.Applied {
		return svc, ro, fmt.Errorf("stale rollout status: %s is rolling out revision %d, not %d", p.Service, ro.Applied, p.Revision)
	}
	switch p.Phase {
	case ledger.RolloutComplete, ledger.RolloutFailed:
		if ro.Phase != ledger.RolloutProgressing {
			return svc, ro, fmt.Errorf("rollout of %s revision %d is %s, not progressing", p.Service, p.Revision, ro.Phase)
		}
	case ledger.RolloutReverted:
		if ro.Phase != ledger.RolloutProgressing && ro.Phase != ledger.RolloutFailed {
			return svc, ro, fmt.Errorf("rollout of %s revision %d is %s; only a progressing or failed rollout is reverted", p.Service, p.Revision, ro.Phase)
		}
		if ro.Stable == 0 || ro.Stable == ro.Revision {
			return svc, ro, fmt.Errorf("rollout of %s revision %d has no earlier good revision to revert to", p.Service, p.Revision)
		}
	default:
		return svc, ro, fmt.Errorf("rollout status phase must be complete, failed or reverted, got %q", p.Phase)
	}
	return svc, ro, nil
}

func (a *applier) rolloutControl(t *ledger.Tx) error {
	var p ledger.RolloutControl
	if err := t.Decode(&p); err != nil {
		return err
	}
	svc, ro, err := checkRolloutControl(a.view, t.Type, &p)
	if err != nil {
		return err
	}
	op := a.signer(t).Owner
	if t.Type == ledger.TxRolloutPause {
		ro.Phase, ro.Message = ledger.RolloutPaused, "paused by "+op
	} else {
		ro.Phase, ro.Message = ledger.RolloutProgressing, "resumed by "+op
	}
	if p.Reason != "" {
		ro.Message += ": " + p.Reason
	}
	// The progress deadline counts again from here: a pause is not a lack of progress.
	ro.Since = a.block.Time
	svc.Rollout = &ro
	if err := putJSON(a.bucket(bucketServices), []byte(svc.Name), svc); err != nil {
		return err
	}
	a.event("rollout."+string(ro.Phase), svc.Name, "", "", fmt.Sprintf("rollout of %s revision %d %s", svc.Name, ro.Applied, ro.Message))
	return nil
}

// Errors of pausing and resuming, for callers that must tell them apart.
var (
	ErrNotPausable = errors.New("nothing to pause")
	ErrNotPaused   = errors.New("not paused")
)

func checkRolloutControl(v chainView, typ ledger.TxType, p *ledger.RolloutControl) (Service, Rollout, error) {
	var svc Service
	if ok, err := getJSON(v.tx.Bucket(bucketServices), []byte(p.Service), &svc); err != nil {
		return svc, Rollout{}, err
	} else if !ok {
		return svc, Rollout{}, fmt.Errorf("%w: service %q", ErrNotFound, p.Service)
	}
	ro := svc.CurrentRollout()
	if typ == ledger.TxRolloutPause && ro.Phase != ledger.RolloutProgressing && ro.Phase != ledger.RolloutComplete {
		return svc, ro, fmt.Errorf("%w: the rollout of %s revision %d is %s; only a progressing or complete rollout can be paused", ErrNotPausable, p.Service, ro.Applied, ro.Phase)
	}
	if typ == ledger.TxRolloutResume && ro.Phase != ledger.RolloutPaused {
		return svc, ro, fmt.Errorf("%w: the rollout of %s revision %d is %s", ErrNotPaused, p.Service, ro.Applied, ro.Phase)
	}
	return svc, ro, nil
}

// precheckRollout tells at the door whether a rollout transaction can take effect; ok
// is false for any other type.
func precheckRollout(v chainView, t *ledger.Tx) (ok bool, err error) {
	switch t.Type {
	case ledger.TxRolloutStatus:
		var p ledger.RolloutStatus
		if err := t.Decode(&p); err != nil {
			return true, err
		}
		info, _, _ := v.Key(t.Signer)
		_, _, err := checkRolloutStatus(v, info, &p)
		return true, err
	case ledger.TxRolloutPause, ledger.TxRolloutResume:
		var p ledger.RolloutControl
		if err := t.Decode(&p); err != nil {
			return true, err
		}
		_, _, err := checkRolloutControl(v, t.Type, &p)
		return true, err
	}
	return false, nil
}

// SameTemplate reports whether two specs of a service run the same thing: they differ
// in nothing but replicas and rollout, so replicas of one can stand for the other.
func SameTemplate(a, b *manifest.Service) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.Spec.Replicas, y.Spec.Replicas = 0, 0
	x.Spec.Rollout, y.Spec.Rollout = nil, nil
	return sameJSON(x, y)
}

// Equivalent reports whether replicas of revision a can stand for replicas of revision
// b: the same template (SameTemplate), made with the same versions of the secrets and
// configs they name. A change of replicas alone then replaces no running replica.
func Equivalent(a, b Revision) bool {
	return a.Service == b.Service && sameJSON(a.Inputs, b.Inputs) && SameTemplate(a.Spec, b.Spec)
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// RevisionCache reads revisions of services from a store, each once: a reconcile or an
// API request asks for the same few many times.
type RevisionCache struct {
	Store *Store
	revs  map[revKey]Revision
}

type revKey struct {
	service  string
	revision uint64
}

// Revision returns one revision, wrapping ErrNotFound when the store lacks it.
func (c *RevisionCache) Revision(service string, rev uint64) (Revision, error) {
	k := revKey{service, rev}
	if r, ok := c.revs[k]; ok {
		return r, nil
	}
	r, ok, err := c.Store.Revision(service, rev)
	if err != nil {
		return r, fmt.Errorf("read revision %d of %s: %w", rev, service, err)
	}
	if !ok {
		return r, fmt.Errorf("revision %d of %s: %w", rev, service, ErrNotFound)
	}
	if c.revs == nil {
		c.revs = map[revKey]Revision{}
	}
	c.revs[k] = r
	return r, nil
}

// Equivalent reports whether revision rev of service is Equivalent to revision target;
// a revision the store lacks is equivalent to none.
func (c *RevisionCache) Equivalent(service string, rev, target uint64) bool {
	if rev == target {
		return true
	}
	a, err := c.Revision(service, rev)
	if err != nil {
		return false
	}
	b, err := c.Revision(service, target)
	return err == nil && Equivalent(a, b)
}
