package transport

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/convergedb/converge/crdt"
)

// TestSessionStepAfterDone: stepping a finished session is a bug of the
// driver's, and says so.
func TestSessionStepAfterDone(t *testing.T) {
	s := NewSession("ns", crdt.ReplicaID{}, Limits{}, Options{})
	s.Step(Outcome{Err: errors.New("disk on fire")})
	if a := s.Next(); a.Kind != SessionDone || a.Err == nil {
		t.Fatalf("after a failed vector read: %v, %v; want done with an error", a.Kind, a.Err)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "after the session is done") {
			t.Errorf("Step after done: recovered %v, want a panic naming the misuse", r)
		}
	}()
	s.Step(Outcome{})
}

// TestSessionNextIsStable: Next returns the same action until Step.
func TestSessionNextIsStable(t *testing.T) {
	s := NewSession("ns", crdt.ReplicaID{1}, Limits{}, Options{})
	s.Step(Outcome{Vector: crdt.VersionVector{}})
	a, b := s.Next(), s.Next()
	if a.Kind != SendRequest || a.Request != b.Request || a.Request.From != (crdt.ReplicaID{1}) || a.Namespace != "ns" {
		t.Fatalf("Next twice: %+v, %+v; want the same request, from the session's replica", a, b)
	}
}

// TestSessionMissingAnswers: a peer that answers nothing (nil and no
// error) ends the session with ErrBadMessage, not a panic.
func TestSessionMissingAnswers(t *testing.T) {
	s := NewSession("ns", crdt.ReplicaID{}, Limits{}, Options{})
	s.Step(Outcome{Vector: crdt.VersionVector{}})
	s.Step(Outcome{}) // SendRequest, no response
	if a := s.Next(); a.Kind != SessionDone || !errors.Is(a.Err, ErrBadMessage) || a.Result.Rounds != 1 {
		t.Fatalf("after a nil response: %v, %v, %d rounds; want done with ErrBadMessage after 1", a.Kind, a.Err, a.Result.Rounds)
	}

	s = NewSession("ns", crdt.ReplicaID{}, Limits{}, Options{})
	s.Step(Outcome{Vector: crdt.VersionVector{}})
	s.Step(Outcome{Response: &Response{Vector: crdt.VersionVector{}, SnapshotNeeded: true}})
	if a := s.Next(); a.Kind != FetchSnapshotPage {
		t.Fatalf("after snapshot needed: %v, want a page fetch", a.Kind)
	}
	s.Step(Outcome{}) // no page
	if a := s.Next(); a.Kind != SessionDone || !errors.Is(a.Err, ErrBadMessage) {
		t.Fatalf("after a nil page: %v, %v; want done with ErrBadMessage", a.Kind, a.Err)
	}
}

// TestSessionLimits: the session asks for pages within its options and
// the peer's page limits, defaults filling what neither bounds.
func TestSessionLimits(t *testing.T) {
	s := NewSession("ns", crdt.ReplicaID{}, Limits{MaxBytes: 4096}, Options{Limits: Limits{MaxOps: 50}})
	s.Step(Outcome{Vector: crdt.VersionVector{}})
	if got, want := s.Next().Request.Limits, (Limits{MaxOps: 50, MaxBytes: 4096}); got != want {
		t.Errorf("request limits %+v, want %+v", got, want)
	}
}

// silentPeer answers every round trip and snapshot page with nothing and
// no error: a broken transport.
type silentPeer struct{ *MemPeer }

func (silentPeer) RoundTrip(context.Context, *Request) (*Response, error) { return nil, nil }

// TestSyncSilentPeer: Sync with a peer that answers nothing fails with
// ErrBadMessage (it used to dereference the nil answer).
func TestSyncSilentPeer(t *testing.T) {
	store := newModelStore("a")
	_, err := Sync(t.Context(), store, silentPeer{NewMemPeer(newModelStore("b"), Limits{})}, "ns", Options{})
	if !errors.Is(err, ErrBadMessage) {
		t.Fatalf("Sync with a silent peer: %v, want ErrBadMessage", err)
	}
}
