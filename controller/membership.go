package controller

import (
	"slices"
	"sort"
	"strings"
	"time"
)

// Member is a node as the membership reconciler sees it.
type Member struct {
	ID string
	// InRaft says the node is in the ordering layer's configuration; Voter that it votes.
	InRaft, Voter bool
	// Validator is the node's flag on the ledger (may propose blocks).
	Validator bool
	// Alive is gossip's view; DownSince is when it was first seen down (zero if alive).
	Alive     bool
	DownSince time.Time
	Joined    time.Time
}

// MembershipInput is what the membership reconciler decides from.
type MembershipInput struct {
	// Members are the nodes on the ledger.
	Members []Member
	// Gone are nodes in the ordering configuration that are no longer on the ledger
	// (removed).
	Gone   []string
	Leader string
	Now    time.Time
	// Stabilize is how long a validator must be down before it is replaced.
	Stabilize time.Duration
}

// MembershipPlan is what to change. The runner applies it in an order that keeps every
// raft voter a ledger validator: new validators are recorded before they get a vote,
// and lose their vote before they stop being validators.
type MembershipPlan struct {
	// AddNonvoters are nodes to add to the ordering layer as followers of the chain.
	AddNonvoters []string
	// Promote are followers to make voters.
	Promote []string
	// Demote are voters to make followers (alive, but more voters than wanted).
	Demote []string
	// Remove are voters down longer than Stabilize, and removed nodes.
	Remove []string
	// Validators is the validator set once the plan is applied, sorted; it equals the
	// current one when nothing changes.
	Validators []string
}

// Empty reports whether the plan changes nothing.
func (p MembershipPlan) Empty() bool {
	return len(p.AddNonvoters)+len(p.Promote)+len(p.Demote)+len(p.Remove) == 0
}

// TargetValidators is how many validators a network of n live nodes wants: 1, 3 or 5,
// always odd so a majority is well defined, and never more than there are live nodes.
func TargetValidators(n int) int {
	switch {
	case n >= 5:
		return 5
	case n >= 3:
		return 3
	default:
		return 1
	}
}

// Membership decides which nodes validate. Validators that are alive, or down for less
// than Stabilize, are kept (a short blip does not reshuffle the set); the set is then
// grown from live followers, oldest first, or shrunk, newest first, to the target size;
// the leader is never demoted.
func Membership(in MembershipInput) MembershipPlan {
	var plan MembershipPlan
	plan.Remove = append(plan.Remove, in.Gone...)
	settled := func(m Member) bool { return m.Alive || in.Now.Sub(m.DownSince) < in.Stabilize }
	// A node down for less than the stabilisation time still counts: a short blip must
	// not shrink the validator set any more than it replaces a validator.
	live := 0
	for _, m := range in.Members {
		if settled(m) {
			live++
		}
		if !m.InRaft {
			plan.AddNonvoters = append(plan.AddNonvoters, m.ID)
		}
	}
	target := TargetValidators(live)

	var keep, dead []Member
	for _, m := range in.Members {
		if !m.Voter {
			continue
		}
		if settled(m) {
			keep = append(keep, m)
		} else {
			dead = append(dead, m)
		}
	}
	older := func(a, b Member) int {
		if c := a.Joined.Compare(b.Joined); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	}
	// Shrink: drop voters that are down first, then the newest; never the leader.
	if len(keep) > target {
		slices.SortFunc(keep, func(a, b Member) int {
			if a.ID == in.Leader || b.ID == in.Leader {
				return boolCmp(b.ID == in.Leader, a.ID == in.Leader)
			}
			if a.Alive != b.Alive {
				return boolCmp(b.Alive, a.Alive)
			}
			return older(a, b)
		})
		for _, m := range keep[target:] {
			if m.Alive {
				plan.Demote = append(plan.Demote, m.ID)
			} else {
				plan.Remove = append(plan.Remove, m.ID)
			}
		}
		keep = keep[:target]
	}
	// Grow from live followers already in the ordering layer, oldest first.
	if len(keep) < target {
		var cands []Member
		for _, m := range in.Members {
			if m.InRaft && !m.Voter && m.Alive {
				cands = append(cands, m)
			}
		}
		slices.SortFunc(cands, older)
		for _, m := range cands[:min(len(cands), target-len(keep))] {
			plan.Promote = append(plan.Promote, m.ID)
			keep = append(keep, m)
		}
	}
	// A validator set must stay odd: with too few candidates, wait rather than grow to
	// an even size (keep may be even when voters died and no follower can replace them).
	if n := len(keep); n%2 == 0 && len(plan.Promote) > 0 {
		last := plan.Promote[len(plan.Promote)-1]
		plan.Promote = plan.Promote[:len(plan.Promote)-1]
		keep = slices.DeleteFunc(keep, func(m Member) bool { return m.ID == last })
	}
	for _, m := range dead {
		plan.Remove = append(plan.Remove, m.ID)
	}
	for _, m := range keep {
		plan.Validators = append(plan.Validators, m.ID)
	}
	sort.Strings(plan.Validators)
	sort.Strings(plan.AddNonvoters)
	sort.Strings(plan.Remove)
	return plan
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
