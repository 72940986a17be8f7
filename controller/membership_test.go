package controller

import (
	"reflect"
	"testing"
	"time"
)

func TestMembership(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return now.Add(-time.Hour + time.Duration(i)*time.Minute) }
	voter := func(id string, i int) Member {
		return Member{ID: id, InRaft: true, Voter: true, Validator: true, Alive: true, Joined: at(i)}
	}
	follower := func(id string, i int) Member { return Member{ID: id, InRaft: true, Alive: true, Joined: at(i)} }
	down := func(m Member, d time.Duration) Member { m.Alive = false; m.DownSince = now.Add(-d); return m }
	cases := []struct {
		name string
		in   MembershipInput
		want MembershipPlan
	}{
		{
			name: "one node stays the only validator",
			in:   MembershipInput{Members: []Member{voter("a", 0)}, Leader: "a"},
			want: MembershipPlan{Validators: []string{"a"}},
		},
		{
			name: "new nodes join as followers; two live nodes keep one validator",
			in:   MembershipInput{Members: []Member{voter("a", 0), {ID: "b", Alive: true, Joined: at(1)}}, Leader: "a"},
			want: MembershipPlan{AddNonvoters: []string{"b"}, Validators: []string{"a"}},
		},
		{
			name: "three live nodes: grow to three validators, oldest followers first",
			in:   MembershipInput{Members: []Member{voter("a", 0), follower("c", 2), follower("b", 1)}, Leader: "a"},
			want: MembershipPlan{Promote: []string{"b", "c"}, Validators: []string{"a", "b", "c"}},
		},
		{
			name: "four live nodes: three validators",
			in:   MembershipInput{Members: []Member{voter("a", 0), voter("b", 1), voter("c", 2), follower("d", 3)}, Leader: "b"},
			want: MembershipPlan{Validators: []string{"a", "b", "c"}},
		},
		{
			name: "six live nodes: five validators",
			in: MembershipInput{Members: []Member{voter("a", 0), voter("b", 1), voter("c", 2), follower("d", 3),
				follower("e", 4), follower("f", 5)}, Leader: "a"},
			want: MembershipPlan{Promote: []string{"d", "e"}, Validators: []string{"a", "b", "c", "d", "e"}},
		},
		{
			name: "a validator down briefly is kept",
			in: MembershipInput{Members: []Member{voter("a", 0), down(voter("b", 1), 2*time.Second), voter("c", 2), follower("d", 3)},
				Leader: "a", Now: now, Stabilize: 10 * time.Second},
			want: MembershipPlan{Validators: []string{"a", "b", "c"}},
		},
		{
			name: "a validator down past stabilisation is replaced by a live follower",
			in: MembershipInput{Members: []Member{voter("a", 0), down(voter("b", 1), time.Minute), voter("c", 2), follower("d", 3)},
				Leader: "a", Now: now, Stabilize: 10 * time.Second},
			want: MembershipPlan{Promote: []string{"d"}, Remove: []string{"b"}, Validators: []string{"a", "c", "d"}},
		},
		{
			name: "no follower to replace a dead validator: the set shrinks to stay odd",
			in: MembershipInput{Members: []Member{voter("a", 0), down(voter("b", 1), time.Minute), voter("c", 2)},
				Leader: "a", Now: now, Stabilize: 10 * time.Second},
			want: MembershipPlan{Demote: []string{"c"}, Remove: []string{"b"}, Validators: []string{"a"}},
		},
		{
			name: "removed nodes leave the ordering layer",
			in:   MembershipInput{Members: []Member{voter("a", 0)}, Gone: []string{"x"}, Leader: "a"},
			want: MembershipPlan{Remove: []string{"x"}, Validators: []string{"a"}},
		},
		{
			name: "too many voters: the newest alive one is demoted, never the leader",
			in: MembershipInput{Members: []Member{voter("a", 0), voter("b", 1), voter("c", 2), voter("d", 3)},
				Leader: "d"},
			want: MembershipPlan{Demote: []string{"c"}, Validators: []string{"a", "b", "d"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.in.Now.IsZero() {
				c.in.Now = now
			}
			got := Membership(c.in)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// TestMembershipBlipDoesNotShrink: of three validators, one stops answering for a
// moment; the set keeps all three until the stabilisation time has passed.
func TestMembershipBlipDoesNotShrink(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	m := func(id string, alive bool) Member {
		x := Member{ID: id, InRaft: true, Voter: true, Validator: true, Alive: alive}
		if !alive {
			x.DownSince = now.Add(-time.Second)
		}
		return x
	}
	plan := Membership(MembershipInput{Members: []Member{m("a", true), m("b", true), m("c", false)}, Leader: "a", Now: now, Stabilize: 10 * time.Second})
	if !plan.Empty() || len(plan.Validators) != 3 {
		t.Fatalf("a one-second blip changed the validators: %+v", plan)
	}
}
