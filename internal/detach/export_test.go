package detach

// WatchWithGoroutines makes d watch its clients with a goroutine each, as
// it does where there is no poller.
func WatchWithGoroutines(d *Detacher) { d.pollOnce.Do(func() {}) }

// Polled reports whether rw is watched by the poller.
func Polled(rw *Response) bool { return rw.polled }
