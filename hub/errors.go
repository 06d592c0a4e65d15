package hub

import "errors"

// ErrClosed is returned by [Hub.Run] and [Hub.Serve] once [Hub.Close] has
// begun.
var ErrClosed = errors.New("hub: closed")

// ErrRunning is returned by [Hub.Run] (and so [Hub.Serve]) when the hub
// runs already: it runs once.
var ErrRunning = errors.New("hub: already running")

// ErrInvalidConfig is wrapped by [New] for a configuration it refuses,
// with the reason.
var ErrInvalidConfig = errors.New("hub: invalid configuration")
