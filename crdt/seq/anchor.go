package seq

import "fmt"

// Anchor returns a stable position at visible index pos (0 ≤ pos ≤ Len):
// with side After, just after the element before pos (the start, at 0);
// with side Before, just before the element at pos (the end, at Len).
func (s *Seq[E]) Anchor(pos int, side Side) (Anchor, error) {
	if pos < 0 || pos > s.Len() {
		return Anchor{}, fmt.Errorf("%w: anchor at %d in %d elements", ErrRange, pos, s.Len())
	}
	switch side {
	case After:
		if pos == 0 {
			return Anchor{}, nil
		}
		return Anchor{ID: s.toID(s.t.visibleAt(pos - 1).elem()), Side: After}, nil
	case Before:
		if pos == s.Len() {
			return Anchor{Side: Before}, nil
		}
		return Anchor{ID: s.toID(s.t.visibleAt(pos).elem()), Side: Before}, nil
	}
	return Anchor{}, fmt.Errorf("seq: unknown anchor side %d", side)
}

// Resolve returns the visible index an anchor stands at now. ok is false
// when s does not hold the anchor's element (it has not arrived).
func (s *Seq[E]) Resolve(a Anchor) (pos int, ok bool) {
	if a.ID.IsZero() {
		if a.Side == Before {
			return s.Len(), true
		}
		return 0, true
	}
	ag, known := s.agentOf[a.ID.Replica]
	if !known || a.ID.Clock >= MaxClock {
		return 0, false
	}
	c, found := s.lookup(eid{ag, uint32(a.ID.Clock)})
	if !found {
		return 0, false
	}
	pos = s.t.position(c, true)
	if a.Side == After && !c.run().deleted {
		pos++
	}
	return pos, true
}
