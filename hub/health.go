package hub

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// health answers /healthz: 200 when the store and the transports answer,
// 503 otherwise or while shutting down, with a JSON body saying which.
func (h *Hub) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	check := func(name string, err error) {
		if err != nil {
			checks[name] = err.Error()
			ok = false
		} else {
			checks[name] = "ok"
		}
	}
	_, err := h.db.Namespaces(ctx)
	check("store", err)
	if h.syncSrv != nil {
		var err error
		if h.closing.Load() {
			err = errors.New("closing")
		}
		check("http", err)
	}
	if h.rep != nil {
		check("nats", h.rep.Health(ctx).Peer)
	}
	status := "ok"
	switch {
	case h.closing.Load():
		status, ok = "shutting down", false
	case !ok:
		status = "unhealthy"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	// A failed write is the prober's loss.
	_ = json.NewEncoder(w).Encode(struct {
		Status  string            `json:"status"`
		Replica string            `json:"replica"`
		Checks  map[string]string `json:"checks"`
	}{status, h.db.ReplicaID(), checks})
}
