package cache

import (
	"context"
	"sync"
)

// Group coalesces concurrent misses for the same key: the first caller (the
// leader) calls the provider, later callers (followers) wait for its answer.
// When the upstream call fails, the leader publishes the error (Fail) and
// the followers answer with it at once: the same request would fail the
// same way, and calling upstream once per waiter would multiply the load on
// a provider that is already failing. Only when the leader ends without an
// answer or an upstream error (its own client left, the answer may not be
// cached) does a follower make its own call. Followers of a streaming
// request wait for the complete entry and replay it; they never see a
// partial answer.
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
	err   error  // the leader's upstream error, written once, before done is closed
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
func (c *Call) Finish(e *Entry) { c.finish(e, nil) }

// Fail publishes the leader's upstream error to its followers and ends the
// call, unless ctx (the leader's request) has ended: then the failure is the
// leader's own, not the provider's, and nothing is published, so the
// followers make their own calls. Fail on a nil Call (no coalescing) does
// nothing.
func (c *Call) Fail(ctx context.Context, err error) {
	if c == nil || err == nil || ctx.Err() != nil {
		return
	}
	c.finish(nil, err)
}

func (c *Call) finish(e *Entry, err error) {
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
	c.entry, c.err = e, err
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

// Err is the upstream error the leader failed with, nil while it has not
// finished or when it ended without one. A follower whose Wait returned no
// entry answers with Err when it is set instead of calling upstream.
func (c *Call) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
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
