package natstransport

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/convergedb/converge/transport"
)

// Serve answers anti-entropy requests and snapshot page requests for ns
// from the store, on the namespace's queue subject and on this transport's
// direct subject, until
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
	sv, err := t.subscribeServe(ns, subj)
	if err != nil {
		return nil, err
	}
	if err := t.flush(t.ctx); err != nil {
		_ = t.unsubscribe(sv)
		return nil, fmt.Errorf("natstransport: serve %q: %w", ns, err)
	}
	return func() error { return t.unsubscribe(sv) }, nil
}

// subscription is a set of subscriptions and the callbacks of theirs
// still running.
type subscription struct {
	subs     []*nats.Subscription
	inflight sync.WaitGroup
}

func (t *Transport) subscribeServe(ns string, subj subjects) (*subscription, error) {
	sv := &subscription{}
	handler := func(m *nats.Msg) {
		sv.inflight.Add(1)
		defer sv.inflight.Done()
		t.answer(ns, m)
	}
	group, err := t.nc.QueueSubscribe(subj.sync, t.opts.QueueGroup, handler)
	if err != nil {
		return nil, fmt.Errorf("natstransport: serve %q: %w", ns, err)
	}
	direct, err := t.nc.Subscribe(subj.direct(t.id), handler)
	if err != nil {
		_ = group.Unsubscribe()
		return nil, fmt.Errorf("natstransport: serve %q: %w", ns, err)
	}
	sv.subs = []*nats.Subscription{group, direct}
	return sv, nil
}

// unsubscribe removes the subscriptions, waits until the server has
// processed that (so no request is routed to them and lost), and waits for
// the callbacks in progress: afterwards nothing of theirs is applied.
func (t *Transport) unsubscribe(sv *subscription) error {
	var errs []error
	for _, s := range sv.subs {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			errs = append(errs, err)
		}
	}
	// Not connected: the subscriptions are gone from the connection and a
	// reconnect will not restore them.
	if t.nc.Status() == nats.CONNECTED {
		ctx, cancel := context.WithTimeout(context.Background(), t.opts.RequestTimeout)
		if err := t.nc.FlushWithContext(ctx); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, fmt.Errorf("flush after unsubscribe: %w", err))
		}
		cancel()
	}
	sv.inflight.Wait()
	return errors.Join(errs...)
}

// answer serves one anti-entropy request or snapshot page request of ns,
// by the message's kind. Malformed requests are counted, logged and
// refused; nothing of theirs is applied.
func (t *Transport) answer(ns string, m *nats.Msg) {
	t.c.bytesIn.Add(int64(len(m.Data)))
	if m.Reply == "" {
		t.drop(ns, m, errors.New("request without a reply subject"))
		return
	}
	if kind, err := transport.MessageKind(m.Data); err == nil && kind == transport.KindSnapshotRequest {
		t.answerSnapshot(ns, m)
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
		if len(data) > t.maxPayload() && lim.MaxBytes > 1024 && len(resp.Ops) > 1 {
			// The vector made the page too big: the ops pushed were
			// applied, so answer with a smaller page of the rest.
			lim.MaxBytes /= 2
			req.Ops = nil
			continue
		}
		out := nats.NewMsg(m.Reply)
		out.Header.Set(hdrFrom, t.id)
		out.Data = data
		if len(data) > t.maxPayload() {
			t.refuse(m, fmt.Sprintf("reply of %d bytes exceeds the max payload %d", len(data), t.maxPayload()))
			return
		}
		if err := m.RespondMsg(out); err != nil {
			t.log.Debug("reply failed", "ns", ns, "err", err)
			return
		}
		t.c.served.Add(1)
		t.c.bytesOut.Add(int64(len(data)))
		if id := m.Header.Get(hdrRequestID); transport.ValidRequestID(id) {
			t.log.Debug("sync served", "ns", ns, "request_id", id, "applied", resp.Applied.Applied, "sent", len(resp.Ops))
		}
		return
	}
}

// answerSnapshot serves one snapshot page request of ns, within the max
// payload.
func (t *Transport) answerSnapshot(ns string, m *nats.Msg) {
	req, err := transport.DecodeSnapshotRequest(m.Data)
	if err != nil {
		t.drop(ns, m, err)
		t.refuse(m, err.Error())
		return
	}
	if req.Namespace != ns {
		err := fmt.Errorf("snapshot request for namespace %q on the subject of %q", req.Namespace, ns)
		t.drop(ns, m, err)
		t.refuse(m, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.opts.RequestTimeout)
	defer cancel()
	lim := t.PageLimits()
	for {
		resp, err := transport.ServeSnapshot(ctx, t.store, req, lim)
		if err != nil {
			t.log.Warn("serving a snapshot page failed", "ns", ns, "err", err)
			t.refuse(m, err.Error())
			return
		}
		data := transport.AppendSnapshotResponse(nil, resp)
		if len(data) > t.maxPayload() {
			if len(resp.Records) > 1 {
				// Fewer records, until the page fits.
				req.Limits = transport.Limits{MaxOps: len(resp.Records) / 2, MaxBytes: lim.MaxBytes}
				continue
			}
			t.refuse(m, fmt.Sprintf("snapshot page of %d bytes (one record state) exceeds the max payload %d", len(data), t.maxPayload()))
			return
		}
		out := nats.NewMsg(m.Reply)
		out.Header.Set(hdrFrom, t.id)
		out.Data = data
		if err := m.RespondMsg(out); err != nil {
			t.log.Debug("snapshot reply failed", "ns", ns, "err", err)
			return
		}
		t.c.snapshotPages.Add(1)
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
