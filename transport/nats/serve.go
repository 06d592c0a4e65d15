package natstransport

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/convergedb/converge/transport"
)

// Serve answers anti-entropy requests for ns from the store, on the
// namespace's queue subject and on this transport's direct subject, until
// stop is called or the transport closes. It returns once the server has
// registered the subscriptions. [Transport.Stream] serves while it runs;
// Serve is for replicas that only answer (a hub without a replicator, a
// test).
func (t *Transport) Serve(ns string) (stop func() error, err error) {
	if t.store == nil {
		return nil, ErrNoStore
	}
	subj, err := subjectsFor(t.opts.Prefix, ns)
	if err != nil {
		return nil, err
	}
	subs, err := t.subscribeServe(ns, subj)
	if err != nil {
		return nil, err
	}
	ctx, cancel := t.withTimeout(t.ctx)
	defer cancel()
	if err := t.nc.FlushWithContext(ctx); err != nil {
		unsubscribeAll(subs)
		return nil, fmt.Errorf("natstransport: serve %q: %w", ns, err)
	}
	return func() error { return unsubscribeAll(subs) }, nil
}

func (t *Transport) subscribeServe(ns string, subj subjects) ([]*nats.Subscription, error) {
	handler := func(m *nats.Msg) { t.answer(ns, m) }
	group, err := t.nc.QueueSubscribe(subj.sync, t.opts.QueueGroup, handler)
	if err != nil {
		return nil, fmt.Errorf("natstransport: serve %q: %w", ns, err)
	}
	direct, err := t.nc.Subscribe(subj.direct(t.id), handler)
	if err != nil {
		_ = group.Unsubscribe()
		return nil, fmt.Errorf("natstransport: serve %q: %w", ns, err)
	}
	return []*nats.Subscription{group, direct}, nil
}

func unsubscribeAll(subs []*nats.Subscription) error {
	var errs []error
	for _, s := range subs {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// answer serves one anti-entropy request of ns. Malformed requests are
// counted, logged and refused; nothing of theirs is applied.
func (t *Transport) answer(ns string, m *nats.Msg) {
	t.c.bytesIn.Add(int64(len(m.Data)))
	if m.Reply == "" {
		t.drop(ns, m, errors.New("request without a reply subject"))
		return
	}
	req, err := transport.DecodeRequest(m.Data)
	if err != nil {
		t.drop(ns, m, err)
		t.refuse(m, err.Error())
		return
	}
	if req.Namespace != ns {
		err := fmt.Errorf("request for namespace %q on the subject of %q", req.Namespace, ns)
		t.drop(ns, m, err)
		t.refuse(m, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.opts.RequestTimeout)
	defer cancel()
	lim := t.PageLimits()
	for {
		resp, err := transport.Serve(ctx, t.store, req, lim)
		if err != nil {
			t.log.Warn("serving a request failed", "ns", ns, "err", err)
			t.refuse(m, err.Error())
			return
		}
		data := transport.AppendResponse(nil, resp)
		if len(data) > t.maxPayload && lim.MaxBytes > 1024 && len(resp.Ops) > 1 {
			// The vector made the page too big: the ops pushed were
			// applied, so answer with a smaller page of the rest.
			lim.MaxBytes /= 2
			req.Ops = nil
			continue
		}
		out := nats.NewMsg(m.Reply)
		out.Header.Set(hdrFrom, t.id)
		out.Data = data
		if len(data) > t.maxPayload {
			t.refuse(m, fmt.Sprintf("reply of %d bytes exceeds the max payload %d", len(data), t.maxPayload))
			return
		}
		if err := m.RespondMsg(out); err != nil {
			t.log.Debug("reply failed", "ns", ns, "err", err)
			return
		}
		t.c.served.Add(1)
		t.c.bytesOut.Add(int64(len(data)))
		return
	}
}

// refuse answers a request with a reason instead of a response.
func (t *Transport) refuse(m *nats.Msg, reason string) {
	if m.Reply == "" {
		return
	}
	out := nats.NewMsg(m.Reply)
	out.Header.Set(hdrFrom, t.id)
	if len(reason) > 512 {
		reason = reason[:512]
	}
	out.Header.Set(hdrError, reason)
	_ = m.RespondMsg(out) // the requester times out if this is lost
}

// drop counts and logs a malformed message.
func (t *Transport) drop(ns string, m *nats.Msg, err error) {
	t.c.malformed.Add(1)
	t.log.Warn("dropped a malformed message", "ns", ns, "subject", m.Subject, "bytes", len(m.Data), "err", err)
}
