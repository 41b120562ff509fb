package cache

import (
	"context"
	"sync"
)

// Group coalesces concurrent misses for the same key: the first caller (the
// leader) calls the provider, later callers (followers) wait for its answer.
// Unlike singleflight, the leader's failure is not shared: a follower that
// gets no entry makes its own call, so one failed upstream call does not fail
// every waiting client. Followers of a streaming request wait for the
// complete entry and replay it; they never see a partial answer.
//
// The zero Group is ready to use. It starts no goroutines.
type Group struct {
	mu    sync.Mutex
	calls map[Key]*Call
}

// Call is one in-flight upstream call shared by a leader and its followers.
type Call struct {
	g     *Group
	key   Key
	done  chan struct{}
	entry *Entry // written once, before done is closed
}

// Join returns the call in flight for k and whether the caller leads it.
// A leader must call Finish exactly once, whatever happens (defer it with a
// nil entry and overwrite on success), or its followers wait until their
// own contexts end and later requests for k keep joining a dead call.
func (g *Group) Join(k Key) (*Call, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.calls[k]; ok {
		return c, false
	}
	if g.calls == nil {
		g.calls = make(map[Key]*Call)
	}
	c := &Call{g: g, key: k, done: make(chan struct{})}
	g.calls[k] = c
	return c, true
}

// Finish publishes the leader's answer: e is the complete entry, or nil when
// the call failed or its answer may not be cached. It removes the call from
// the group, so later requests start afresh, and wakes the followers. Calls
// after the first are ignored, which makes "defer c.Finish(nil)" after an
// explicit Finish safe.
func (c *Call) Finish(e *Entry) {
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	select {
	case <-c.done:
		return
	default:
	}
	if c.g.calls[c.key] == c {
		delete(c.g.calls, c.key)
	}
	c.entry = e
	close(c.done)
}

// Wait blocks a follower until the leader finishes or ctx ends (bound the
// wait with a deadline). It returns the leader's entry and true, or nil and
// false when the leader had nothing cacheable or ctx ended first; the
// follower should then call the provider itself.
func (c *Call) Wait(ctx context.Context) (*Entry, bool) {
	select {
	case <-c.done:
		return c.entry, c.entry != nil
	case <-ctx.Done():
		return nil, false
	}
}

// Done is closed when the leader finishes, for callers that select on it
// together with other events.
func (c *Call) Done() <-chan struct{} { return c.done }

// Len is the number of calls in flight.
func (g *Group) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}
