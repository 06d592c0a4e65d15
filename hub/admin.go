package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/convergedb/converge"
	httptransport "github.com/convergedb/converge/transport/http"
)

// The admin endpoint shows an operator what the hub holds, so replicas
// can be compared without stopping them. It takes the bearer tokens of
// the sync endpoint and shows only the namespaces a token's grant holds
// (a token granted ">" sees them all).
//
//	GET /v1/admin/namespaces   [NamespaceInfo...] of the namespaces granted
//	GET /v1/admin/ns/{ns}      NamespaceDetail of ns

// NamespaceInfo is the summary of one namespace the admin endpoint
// lists.
type NamespaceInfo struct {
	Namespace string            `json:"namespace"`
	Vector    map[string]uint64 `json:"vector"`
	StateHash string            `json:"state_hash"`
	Ops       uint64            `json:"ops"`
	Peers     int               `json:"peers"`
	// Quarantined counts the ops kept in quarantine.
	Quarantined int `json:"quarantined"`
}

// NamespaceDetail is what the admin endpoint shows of one namespace.
type NamespaceDetail struct {
	NamespaceInfo
	// Horizon is the compaction horizon: the ops folded into base states.
	Horizon map[string]uint64 `json:"horizon"`
	// PeerStates are what each known peer held, as it last said.
	PeerStates []converge.PeerState `json:"peer_states"`
	// Quarantine lists the quarantined ops.
	Quarantine []converge.QuarantinedOp `json:"quarantine"`
	// Replication is the NATS replication status, for a namespace the hub
	// replicates over NATS.
	Replication *ReplicationStatus `json:"replication,omitempty"`
}

// ReplicationStatus is converge.Status as JSON.
type ReplicationStatus struct {
	State     string    `json:"state"`
	Pending   uint64    `json:"pending"`
	LastSync  time.Time `json:"last_sync"`
	LastError string    `json:"last_error,omitempty"`
	Failures  int       `json:"failures"`
}

// adminGrant authorizes an admin request; it answers 401 itself.
func (h *Hub) adminGrant(w http.ResponseWriter, r *http.Request) (httptransport.Grant, bool) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="converge"`)
		http.Error(w, "missing bearer token", http.StatusUnauthorized)
		return httptransport.Grant{}, false
	}
	g, err := h.auth.Authorize(r.Context(), strings.TrimSpace(token))
	switch {
	case errors.Is(err, httptransport.ErrUnauthorized):
		w.Header().Set("WWW-Authenticate", `Bearer realm="converge", error="invalid_token"`)
		http.Error(w, "invalid bearer token", http.StatusUnauthorized)
		return g, false
	case err != nil:
		http.Error(w, "authorizer: "+err.Error(), http.StatusInternalServerError)
		return g, false
	}
	return g, true
}

// adminNamespaces answers GET /v1/admin/namespaces.
func (h *Hub) adminNamespaces(w http.ResponseWriter, r *http.Request) {
	g, ok := h.adminGrant(w, r)
	if !ok {
		return
	}
	nss, err := h.db.Namespaces(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	out := []NamespaceInfo{}
	for _, ns := range nss {
		if !g.Allows(ns) {
			continue
		}
		info, _, err := h.namespaceInfo(r.Context(), ns)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out = append(out, info)
	}
	writeJSON(w, out)
}

// adminNamespace answers GET /v1/admin/ns/{ns}.
func (h *Hub) adminNamespace(w http.ResponseWriter, r *http.Request) {
	g, ok := h.adminGrant(w, r)
	if !ok {
		return
	}
	ns := r.PathValue("ns")
	if !g.Allows(ns) {
		http.Error(w, fmt.Sprintf("namespace %q is not granted to this token", ns), http.StatusForbidden)
		return
	}
	info, d, err := h.namespaceInfo(r.Context(), ns)
	if err == nil {
		d.NamespaceInfo = info
		err = h.replicationOf(r.Context(), ns, &d)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, d)
}

// namespaceInfo reads what the admin endpoint shows of ns.
func (h *Hub) namespaceInfo(ctx context.Context, ns string) (NamespaceInfo, NamespaceDetail, error) {
	db := h.db.Admin()
	info := NamespaceInfo{Namespace: ns}
	var d NamespaceDetail
	var err error
	if info.Vector, err = db.Vector(ctx, ns); err != nil {
		return info, d, err
	}
	if info.StateHash, err = db.StateHash(ctx, ns); err != nil {
		return info, d, err
	}
	if d.Horizon, err = db.Horizon(ctx, ns); err != nil {
		return info, d, err
	}
	if d.PeerStates, err = db.Peers(ctx, ns); err != nil {
		return info, d, err
	}
	if d.Quarantine, err = db.Quarantine(ctx, ns); err != nil {
		return info, d, err
	}
	info.Ops, info.Peers, info.Quarantined = sum(info.Vector), len(d.PeerStates), len(d.Quarantine)
	return info, d, nil
}

// replicationOf fills d's replication status, if ns is replicated over NATS.
func (h *Hub) replicationOf(ctx context.Context, ns string, d *NamespaceDetail) error {
	if h.rep == nil {
		return nil
	}
	for _, n := range h.cfg.NATS.Namespaces {
		if n != ns {
			continue
		}
		st, err := h.rep.Status(ctx, ns)
		if err != nil {
			return err
		}
		rs := &ReplicationStatus{State: string(st.State), Pending: st.Pending, LastSync: st.LastSync, Failures: st.Failures}
		if st.LastError != nil {
			rs.LastError = st.LastError.Error()
		}
		d.Replication = rs
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // a failed write is the client's loss
}
