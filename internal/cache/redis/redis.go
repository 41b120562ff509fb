// Package redis is the shared cache tier (L2): encoded entries in Redis or
// Redis Cluster under a versioned key prefix, with per-call timeouts so that
// a slow or dead Redis costs a miss, never a failed request.
package redis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/edge-agent/edge-agent/internal/cache"
)

// Defaults for zero Options fields.
const (
	DefaultTTL     = 3600 * time.Second
	DefaultTimeout = 50 * time.Millisecond
	// DefaultPrefix carries the format version of keys and values: a change
	// of either bumps it, and old entries are simply never read again.
	DefaultPrefix = "llm-edge:v1:"
	// dialTimeout bounds connecting, including at start-up; it is longer
	// than a call timeout so that a slow handshake can still complete.
	dialTimeout = time.Second
)

// Options configure the L2 cache.
type Options struct {
	// URL is a redis:// or rediss:// URL (user, password and /db included),
	// or several comma-separated URLs or host:port addresses, which select
	// cluster mode.
	URL     string
	Cluster bool          // cluster mode even with a single address
	TTL     time.Duration // entry lifetime for ttl 0; 0 means DefaultTTL
	Timeout time.Duration // per call; 0 means DefaultTimeout
	Prefix  string        // key prefix; "" means DefaultPrefix
}

// ErrUnavailable is returned while Redis cannot be reached: before the first
// connection in cluster mode, and for a short while after repeated failures,
// so that a dead Redis is skipped instead of costing a timeout per request.
var ErrUnavailable = errors.New("redis cache: unavailable")

// Failures in a row that make the cache skip Redis for skipFor.
const (
	failureThreshold = 3
	skipFor          = 250 * time.Millisecond
)

// Cache is the L2 tier.
type Cache struct {
	ttl     time.Duration
	timeout time.Duration
	prefix  string

	client    atomic.Pointer[rueidis.Client] // nil until the first successful connection (cluster)
	healthy   atomic.Bool
	failures  atomic.Int32
	skipUntil atomic.Int64 // Unix ns; calls fail fast before it

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	countMu   sync.Mutex // one count at a time
	count     int64
	countedAt time.Time
}

// New connects to Redis. It does not fail when Redis is down: a standalone
// client reconnects by itself on later calls, and a cluster client, which
// needs the topology to be created, is created by a background goroutine
// that retries until it succeeds or Close is called. Only a malformed URL is
// an error.
func New(ctx context.Context, o Options) (*Cache, error) {
	opt, cluster, err := clientOptions(o)
	if err != nil {
		return nil, err
	}
	c := &Cache{
		ttl: o.TTL, timeout: o.Timeout, prefix: o.Prefix,
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if c.ttl <= 0 {
		c.ttl = DefaultTTL
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.prefix == "" {
		c.prefix = DefaultPrefix
	}
	if !cluster {
		// ForceSingleClient returns a working client even when the first
		// dial fails; its connection is redialled by the next call.
		opt.ForceSingleClient = true
		cl, err := rueidis.NewClient(opt)
		if cl == nil {
			close(c.done)
			return nil, fmt.Errorf("redis cache: %w", err)
		}
		c.client.Store(&cl)
		c.healthy.Store(err == nil)
		close(c.done)
		return c, nil
	}
	if cl, err := rueidis.NewClient(opt); err == nil {
		c.client.Store(&cl)
		c.healthy.Store(true)
		close(c.done)
		return c, nil
	}
	go c.connectLoop(opt)
	return c, nil
}

// connectLoop creates the cluster client once Redis answers.
func (c *Cache) connectLoop(opt rueidis.ClientOption) {
	defer close(c.done)
	wait := 100 * time.Millisecond
	for {
		timer := time.NewTimer(wait)
		select {
		case <-c.stop:
			timer.Stop()
			return
		case <-timer.C:
		}
		if cl, err := rueidis.NewClient(opt); err == nil {
			select {
			case <-c.stop: // Close came first and will not see this client
				cl.Close()
			default:
				c.client.Store(&cl)
				c.healthy.Store(true)
			}
			return
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// clientOptions turns Options.URL into rueidis options without ever putting
// the URL (which may hold a password) into an error message.
func clientOptions(o Options) (rueidis.ClientOption, bool, error) {
	var parts []string
	for p := range strings.SplitSeq(o.URL, ",") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return rueidis.ClientOption{}, false, errors.New("redis cache: URL is empty")
	}
	var opt rueidis.ClientOption
	for i, p := range parts {
		if !strings.Contains(p, "://") {
			p = "redis://" + p
		}
		po, err := rueidis.ParseURL(p)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // url.Error repeats the URL, password included
			}
			return opt, false, fmt.Errorf("redis cache: address %d of the URL is invalid: %w", i+1, err)
		}
		if i == 0 {
			opt = po
		} else {
			opt.InitAddress = append(opt.InitAddress, po.InitAddress...)
		}
	}
	cluster := o.Cluster || len(opt.InitAddress) > 1
	if cluster && opt.SelectDB != 0 {
		return opt, false, errors.New("redis cache: Redis Cluster has only database 0; remove the /db from the URL")
	}
	opt.DisableCache = true // no client-side caching: entries are read once per L1 miss
	opt.DisableRetry = true // a miss is cheaper than retrying past the call timeout
	opt.Dialer.Timeout = dialTimeout
	opt.ClientName = "edge-agent"
	return opt, cluster, nil
}

func (c *Cache) key(k cache.Key) string {
	var buf [64]byte
	b := append(buf[:0], c.prefix...)
	b = append(b, k.String()...)
	return string(b)
}

// begin returns the client and a context bounded by the call timeout, or
// ErrUnavailable when Redis is known to be down.
func (c *Cache) begin(ctx context.Context) (rueidis.Client, context.Context, context.CancelFunc, error) {
	p := c.client.Load()
	if p == nil {
		return nil, nil, nil, ErrUnavailable
	}
	if until := c.skipUntil.Load(); until != 0 && time.Now().UnixNano() < until {
		return nil, nil, nil, ErrUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	return *p, ctx, cancel, nil
}

// observe records whether Redis answered. An error reply (such as
// WRONGTYPE) is an answer: only transport failures and timeouts count.
func (c *Cache) observe(err error) {
	var re *rueidis.RedisError
	if err == nil || rueidis.IsRedisNil(err) || errors.As(err, &re) {
		c.failures.Store(0)
		c.skipUntil.Store(0)
		c.healthy.Store(true)
		return
	}
	c.healthy.Store(false)
	if c.failures.Add(1) >= failureThreshold {
		c.skipUntil.Store(time.Now().Add(skipFor).UnixNano())
	}
}

// Get returns the entry stored under k, or (nil, nil) on a miss. A value
// that does not decode is reported as an error wrapping cache.ErrCorrupt;
// the caller treats it as a miss, and the next Set overwrites it.
func (c *Cache) Get(ctx context.Context, k cache.Key) (*cache.Entry, error) {
	cl, ctx, cancel, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	b, err := cl.Do(ctx, cl.B().Get().Key(c.key(k)).Build()).AsBytes()
	c.observe(err)
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis cache get: %w", err)
	}
	e, err := cache.DecodeEntry(b)
	if err != nil {
		return nil, fmt.Errorf("redis cache get %s: %w", k, err)
	}
	return e, nil
}

// GetMany returns the entries stored under keys, in their order (nil for
// a miss), in one round trip: the GETs go out pipelined in one DoMulti
// (not MGET, which a cluster refuses for keys in different slots; rueidis
// sends each to its node). A value that does not decode is a miss, and the
// first such is reported as an error wrapping cache.ErrCorrupt beside the
// entries found; a failed call returns no entries.
func (c *Cache) GetMany(ctx context.Context, keys []cache.Key) ([]*cache.Entry, error) {
	cl, ctx, cancel, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	cmds := make(rueidis.Commands, len(keys))
	for i, k := range keys {
		cmds[i] = cl.B().Get().Key(c.key(k)).Build()
	}
	out := make([]*cache.Entry, len(keys))
	var corrupt error
	for i, r := range cl.DoMulti(ctx, cmds...) {
		b, err := r.AsBytes()
		if rueidis.IsRedisNil(err) {
			continue
		}
		if err != nil {
			c.observe(err)
			return nil, fmt.Errorf("redis cache get: %w", err)
		}
		e, err := cache.DecodeEntry(b)
		if err != nil {
			if corrupt == nil {
				corrupt = fmt.Errorf("redis cache get %s: %w", keys[i], err)
			}
			continue
		}
		out[i] = e
	}
	c.observe(nil)
	return out, corrupt
}

// Set stores e under k for ttl (0: the default TTL).
func (c *Cache) Set(ctx context.Context, k cache.Key, e *cache.Entry, ttl time.Duration) error {
	if ttl <= 0 {
		ttl = c.ttl
	}
	cl, ctx, cancel, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	v := cache.EncodeEntry(make([]byte, 0, e.Size()+64), e)
	err = cl.Do(ctx, cl.B().Set().Key(c.key(k)).Value(rueidis.BinaryString(v)).Px(ttl).Build()).Error()
	c.observe(err)
	if err != nil {
		return fmt.Errorf("redis cache set: %w", err)
	}
	return nil
}

// Delete removes k.
func (c *Cache) Delete(ctx context.Context, k cache.Key) error {
	cl, ctx, cancel, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	err = cl.Do(ctx, cl.B().Unlink().Key(c.key(k)).Build()).Error()
	c.observe(err)
	if err != nil {
		return fmt.Errorf("redis cache delete: %w", err)
	}
	return nil
}

// Clear removes every key under the prefix, on every node of a cluster, with
// SCAN and UNLINK: other data in the same Redis is left alone, and Redis is
// never blocked by a FLUSHDB or KEYS. It is an admin operation, so it is
// bounded by ctx rather than by the per-call timeout.
func (c *Cache) Clear(ctx context.Context) error {
	p := c.client.Load()
	if p == nil {
		return ErrUnavailable
	}
	cl := *p
	pattern := globEscape(c.prefix) + "*"
	for addr, node := range cl.Nodes() {
		var cursor uint64
		for {
			se, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
			if err != nil {
				c.observe(err)
				return fmt.Errorf("redis cache clear: scan %s: %w", addr, err)
			}
			if len(se.Elements) > 0 {
				// One UNLINK per key, through the cluster-aware client: keys
				// of one node still live in different slots, and a replica
				// would refuse the write.
				cmds := make(rueidis.Commands, 0, len(se.Elements))
				for _, key := range se.Elements {
					cmds = append(cmds, cl.B().Unlink().Key(key).Build())
				}
				for _, r := range cl.DoMulti(ctx, cmds...) {
					if err := r.Error(); err != nil {
						c.observe(err)
						return fmt.Errorf("redis cache clear: unlink: %w", err)
					}
				}
			}
			if cursor = se.Cursor; cursor == 0 {
				break
			}
		}
	}
	c.observe(nil)
	return nil
}

// Entries counts the keys under the prefix on every node the client knows
// (SCAN, never KEYS). A count younger than maxAge is returned as it is, so
// a metrics scrape every few seconds costs one scan a maxAge; concurrent
// callers wait for the scan in progress. It is bounded by ctx.
func (c *Cache) Entries(ctx context.Context, maxAge time.Duration) (int64, error) {
	c.countMu.Lock()
	defer c.countMu.Unlock()
	if !c.countedAt.IsZero() && time.Since(c.countedAt) < maxAge {
		return c.count, nil
	}
	p := c.client.Load()
	if p == nil {
		return 0, ErrUnavailable
	}
	pattern := globEscape(c.prefix) + "*"
	var n int64
	for addr, node := range (*p).Nodes() {
		var cursor uint64
		for {
			se, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
			if err != nil {
				c.observe(err)
				return 0, fmt.Errorf("redis cache count: scan %s: %w", addr, err)
			}
			n += int64(len(se.Elements))
			if cursor = se.Cursor; cursor == 0 {
				break
			}
		}
	}
	c.observe(nil)
	c.count, c.countedAt = n, time.Now()
	return n, nil
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Ping checks Redis now, for the health endpoint, and updates Healthy.
func (c *Cache) Ping(ctx context.Context) error {
	p := c.client.Load()
	if p == nil {
		return ErrUnavailable
	}
	cl := *p
	ctx, cancel := context.WithTimeout(ctx, max(c.timeout, 200*time.Millisecond))
	defer cancel()
	err := cl.Do(ctx, cl.B().Ping().Build()).Error()
	c.observe(err)
	if err != nil {
		return fmt.Errorf("redis cache ping: %w", err)
	}
	return nil
}

// Healthy reports whether the last call reached Redis.
func (c *Cache) Healthy() bool { return c.healthy.Load() }

// Close stops reconnecting and closes the client.
func (c *Cache) Close() {
	c.closeOnce.Do(func() {
		close(c.stop)
		<-c.done
		if p := c.client.Load(); p != nil {
			(*p).Close()
		}
	})
}

// NewClient returns a plain rueidis client for the same URL forms, for
// other users of Redis (shared rate limits, budgets). A single-node client
// is returned even when Redis is down at start-up and reconnects by itself.
func NewClient(url string, cluster bool) (rueidis.Client, error) {
	opt, isCluster, err := clientOptions(Options{URL: url, Cluster: cluster})
	if err != nil {
		return nil, err
	}
	opt.ClientName = "edge-agent-limits"
	if !isCluster {
		opt.ForceSingleClient = true
		if cl, err := rueidis.NewClient(opt); cl != nil {
			return cl, nil
		} else {
			return nil, fmt.Errorf("redis: %w", err)
		}
	}
	cl, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	return cl, nil
}
