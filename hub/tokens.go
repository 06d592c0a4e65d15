package hub

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	httptransport "github.com/convergedb/converge/transport/http"
)

// tokenFile is a token file the hub reloads: an [httptransport.Authorizer]
// that answers with the file as it was last loaded.
type tokenFile struct {
	path string
	cur  atomic.Pointer[httptransport.TokenFile]

	mu    sync.Mutex
	stamp fileStamp // of the file last loaded
}

// fileStamp is what tells a changed file: its identity (a new file
// renamed into place), modification time and size.
type fileStamp struct {
	info    os.FileInfo
	modTime time.Time
	size    int64
}

func (s fileStamp) same(fi os.FileInfo) bool {
	return s.info != nil && os.SameFile(s.info, fi) && s.modTime.Equal(fi.ModTime()) && s.size == fi.Size()
}

// loadTokenFile reads the token file at path.
func loadTokenFile(path string) (*tokenFile, error) {
	t := &tokenFile{path: path}
	if _, err := t.reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Authorize implements httptransport.Authorizer.
func (t *tokenFile) Authorize(ctx context.Context, token string) (httptransport.Grant, error) {
	return t.cur.Load().Authorize(ctx, token)
}

// changed reports whether the file differs from the one last loaded.
func (t *tokenFile) changed() (bool, error) {
	fi, err := os.Stat(t.path)
	if err != nil {
		return false, fmt.Errorf("hub: token file: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.stamp.same(fi), nil
}

// reload reads the file again. A file that does not load leaves the
// tokens as they were (a half-written file revokes nothing) and is an
// error; it is read again at the next change. It reports whether the
// tokens were replaced.
func (t *tokenFile) reload() (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fi, err := os.Stat(t.path)
	if err != nil {
		return false, fmt.Errorf("hub: token file: %w", err)
	}
	tf, err := httptransport.LoadTokenFile(t.path)
	if err != nil {
		t.stamp = fileStamp{info: fi, modTime: fi.ModTime(), size: fi.Size()} // not again until it changes
		return false, fmt.Errorf("hub: %w", err)
	}
	t.cur.Store(tf)
	t.stamp = fileStamp{info: fi, modTime: fi.ModTime(), size: fi.Size()}
	return true, nil
}
