package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/cache"
	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newCache(t testing.TB, o Options) *Cache {
	t.Helper()
	c, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// rawClient talks to the test server directly, beside the cache.
func rawClient(t testing.TB, s *redistest.Server) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr}, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func sampleEntry() *cache.Entry {
	return &cache.Entry{
		Body:     []byte(`{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello."},"finish_reason":"stop"}]}`),
		Provider: "openai", Model: "gpt-4o-mini",
		StoredAt:     time.Unix(1_700_000_000, 0),
		PromptTokens: 10, CompletionTokens: 2, CostUSD: 0.00001,
	}
}

func TestSetThenGetRoundTripsAndAbsentKeyIsAMiss(t *testing.T) {
	s := redistest.Start(t)
	c := newCache(t, Options{URL: s.URL()})
	ctx := context.Background()
	k := cache.Key{1, 2, 3}
	if e, err := c.Get(ctx, k); e != nil || err != nil {
		t.Fatalf("Get of an absent key = %v, %v; want nil, nil", e, err)
	}
	want := sampleEntry()
	if err := c.Set(ctx, k, want, 0); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != string(want.Body) || got.Provider != want.Provider || !got.StoredAt.Equal(want.StoredAt) || got.CostUSD != want.CostUSD {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if !c.Healthy() {
		t.Fatal("Healthy() false after successful calls")
	}
	if err := c.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	if e, _ := c.Get(ctx, k); e != nil {
		t.Fatal("Delete left the entry")
	}
}

func TestEntriesGetTheirTTLAndAVersionedKey(t *testing.T) {
	s := redistest.Start(t)
	c := newCache(t, Options{URL: s.URL(), TTL: 2 * time.Hour})
	raw := rawClient(t, s)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		ttl  time.Duration
		want time.Duration
	}{
		{"default", 0, 2 * time.Hour},
		{"explicit", 90 * time.Second, 90 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := cache.Key{byte(tt.ttl)}
			if err := c.Set(ctx, k, sampleEntry(), tt.ttl); err != nil {
				t.Fatal(err)
			}
			pttl, err := raw.Do(ctx, raw.B().Pttl().Key("llm-edge:v1:"+k.String()).Build()).AsInt64()
			if err != nil {
				t.Fatal(err)
			}
			if got := time.Duration(pttl) * time.Millisecond; got > tt.want || got < tt.want-5*time.Second {
				t.Fatalf("PTTL = %v, want about %v", got, tt.want)
			}
		})
	}
}

func TestExpiredEntryIsAMiss(t *testing.T) {
	s := redistest.Start(t)
	c := newCache(t, Options{URL: s.URL()})
	ctx := context.Background()
	if err := c.Set(ctx, cache.Key{9}, sampleEntry(), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond) // Redis expires on its own clock
	if e, err := c.Get(ctx, cache.Key{9}); e != nil || err != nil {
		t.Fatalf("Get after expiry = %v, %v; want a miss", e, err)
	}
}

func TestClearRemovesOnlyKeysUnderThePrefix(t *testing.T) {
	s := redistest.Start(t)
	c := newCache(t, Options{URL: s.URL()})
	raw := rawClient(t, s)
	ctx := context.Background()
	// More keys than one SCAN page, so the cursor loop is exercised.
	var cmds rueidis.Commands
	for i := range 2500 {
		k := cache.Key{byte(i), byte(i >> 8)}
		cmds = append(cmds, raw.B().Set().Key("llm-edge:v1:"+k.String()).Value("x").Build())
	}
	others := []string{"llm-edge:v2:0011", "session:42", "llm-edge:v1", "xllm-edge:v1:abc"}
	for _, k := range others {
		cmds = append(cmds, raw.B().Set().Key(k).Value("keep").Build())
	}
	for _, r := range raw.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := raw.Do(ctx, raw.B().Dbsize().Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(others)) {
		t.Fatalf("%d keys left, want only the %d outside the prefix", n, len(others))
	}
	for _, k := range others {
		if v, err := raw.Do(ctx, raw.B().Get().Key(k).Build()).ToString(); err != nil || v != "keep" {
			t.Fatalf("key %q outside the prefix was touched: %q, %v", k, v, err)
		}
	}
}

func TestCorruptValueIsAMissReportedAsCorrupt(t *testing.T) {
	s := redistest.Start(t)
	c := newCache(t, Options{URL: s.URL()})
	raw := rawClient(t, s)
	ctx := context.Background()
	k := cache.Key{4}
	good := cache.EncodeEntry(nil, sampleEntry())
	for name, v := range map[string]string{
		"garbage":    "not an entry",
		"truncated":  string(good[:len(good)-3]),
		"old format": string(append([]byte{good[0], 0}, good[2:]...)),
	} {
		t.Run(name, func(t *testing.T) {
			if err := raw.Do(ctx, raw.B().Set().Key("llm-edge:v1:"+k.String()).Value(v).Build()).Error(); err != nil {
				t.Fatal(err)
			}
			e, err := c.Get(ctx, k)
			if e != nil || !errors.Is(err, cache.ErrCorrupt) {
				t.Fatalf("Get = %v, %v; want nil and ErrCorrupt", e, err)
			}
			tiered := cache.NewTiered(cache.Options{L2: c})
			defer tiered.Close()
			if e, tier := tiered.Get(ctx, k, 0); e != nil || tier != cache.TierNone {
				t.Fatalf("tiered Get = %v, %v; want a miss", e, tier)
			}
			if !c.Healthy() {
				t.Fatal("a corrupt value must not mark Redis unhealthy")
			}
		})
	}
}

func TestRedisKilledFailsFastAndRecoversWithoutNewClient(t *testing.T) {
	s := redistest.Start(t)
	timeout := 50 * time.Millisecond
	c := newCache(t, Options{URL: s.URL(), Timeout: timeout})
	ctx := context.Background()
	k := cache.Key{5}
	if err := c.Set(ctx, k, sampleEntry(), 0); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	for i := range 10 {
		begin := time.Now()
		e, err := c.Get(ctx, k)
		if took := time.Since(begin); took > timeout+100*time.Millisecond {
			t.Fatalf("Get %d with Redis down took %v, want at most the %v timeout plus margin", i, took, timeout)
		}
		if err == nil || e != nil {
			t.Fatalf("Get %d with Redis down = %v, %v; want an error", i, e, err)
		}
	}
	if c.Healthy() {
		t.Fatal("Healthy() true with Redis down")
	}
	s.Restart() // same port, empty data set
	// The client keeps several connections; each one broken by the restart
	// fails its next call once (an L2 miss) and is redialled. Within a few
	// calls both writes and reads must work again, on the same client.
	waitFor(t, 3*time.Second, func() bool {
		if c.Set(ctx, k, sampleEntry(), 0) != nil {
			return false
		}
		e, err := c.Get(ctx, k)
		return err == nil && e != nil
	})
	if !c.Healthy() {
		t.Fatal("Healthy() false after Redis came back")
	}
}

func TestNewSucceedsWithRedisDownAndConnectsLater(t *testing.T) {
	s := redistest.Start(t)
	s.Stop()
	c := newCache(t, Options{URL: s.URL()})
	ctx := context.Background()
	if c.Healthy() {
		t.Fatal("Healthy() true before Redis ever answered")
	}
	if err := c.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded with Redis down")
	}
	if _, err := c.Get(ctx, cache.Key{1}); err == nil {
		t.Fatal("Get succeeded with Redis down")
	}
	s.Restart()
	waitFor(t, 3*time.Second, func() bool { return c.Ping(ctx) == nil })
	// A Redis that has just restarted on a loaded machine may miss one
	// call's timeout: what matters is that the cache works again.
	waitFor(t, 3*time.Second, func() bool { return c.Set(ctx, cache.Key{1}, sampleEntry(), 0) == nil })
	if e, err := c.Get(ctx, cache.Key{1}); err != nil || e == nil {
		t.Fatalf("Get = %v, %v", e, err)
	}
}

func TestUnresponsiveServerCostsAtMostTheTimeout(t *testing.T) {
	// A server that accepts connections and never answers: the worst case,
	// worse than a refused connection.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() { <-done; conn.Close() }()
		}
	}()
	begin := time.Now()
	c := newCache(t, Options{URL: "redis://" + l.Addr().String(), Timeout: 50 * time.Millisecond})
	if took := time.Since(begin); took > 3*time.Second {
		t.Fatalf("New took %v against a silent server", took)
	}
	for i := range 5 {
		begin := time.Now()
		if _, err := c.Get(context.Background(), cache.Key{1}); err == nil {
			t.Fatal("Get succeeded against a silent server")
		}
		if took := time.Since(begin); took > 200*time.Millisecond {
			t.Fatalf("Get %d took %v, want about the 50ms timeout", i, took)
		}
	}
}

func TestClientOptionsFromURL(t *testing.T) {
	for _, tt := range []struct {
		name        string
		o           Options
		wantAddrs   []string
		wantCluster bool
		wantDB      int
		wantTLS     bool
	}{
		{"single with password and db", Options{URL: "redis://:s3cret@10.0.0.1:6380/2"}, []string{"10.0.0.1:6380"}, false, 2, false},
		{"tls", Options{URL: "rediss://user:pw@cache.example:6379"}, []string{"cache.example:6379"}, false, 0, true},
		{"bare host:port", Options{URL: "127.0.0.1:7000"}, []string{"127.0.0.1:7000"}, false, 0, false},
		{"several nodes mean cluster", Options{URL: "redis://:pw@10.0.0.1:7000, 10.0.0.2:7001,redis://10.0.0.3:7002"}, []string{"10.0.0.1:7000", "10.0.0.2:7001", "10.0.0.3:7002"}, true, 0, false},
		{"cluster forced", Options{URL: "redis://10.0.0.1:7000", Cluster: true}, []string{"10.0.0.1:7000"}, true, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opt, cluster, err := clientOptions(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(opt.InitAddress) != fmt.Sprint(tt.wantAddrs) || cluster != tt.wantCluster || opt.SelectDB != tt.wantDB || (opt.TLSConfig != nil) != tt.wantTLS {
				t.Fatalf("addrs %v cluster %v db %d tls %v", opt.InitAddress, cluster, opt.SelectDB, opt.TLSConfig != nil)
			}
			if !opt.DisableCache {
				t.Fatal("client-side caching must be off")
			}
		})
	}
	for _, bad := range []string{"", "http://x:1", "redis://:hunter2@host:1/notadb", "redis://:hunter2@a:1/1,b:2", "redis://:hunter2@[::1"} {
		_, _, err := clientOptions(Options{URL: bad})
		if err == nil {
			t.Errorf("URL %q accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error for a bad URL reveals the password: %v", err)
		}
	}
}

func waitFor(t *testing.T, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The cache satisfies the L2 interface of the tiered cache.
var _ cache.L2 = (*Cache)(nil)

func BenchmarkGetHit(b *testing.B) {
	s := redistest.Start(b)
	c := newCache(b, Options{URL: s.URL()})
	ctx := context.Background()
	k := cache.Key{1}
	if err := c.Set(ctx, k, sampleEntry(), 0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if e, err := c.Get(ctx, k); err != nil || e == nil {
			b.Fatal(err)
		}
	}
}

// startClusterNode runs a one-node Redis Cluster owning every slot on port
// (redistest starts only standalone servers).
func startClusterNode(t *testing.T, port int) (stop func()) {
	t.Helper()
	dir := t.TempDir()
	bus := redistest.FreePort(t)
	for bus == port {
		bus = redistest.FreePort(t)
	}
	cmd := exec.Command(redistest.Path(),
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--protected-mode", "no", "--loglevel", "warning",
		"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
		// The bus port defaults to port+10000, which may be taken; choose it.
		"--cluster-port", strconv.Itoa(bus))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server in cluster mode: %v", err)
	}
	stop = func() {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			cmd.Process = nil
		}
	}
	t.Cleanup(stop)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var raw rueidis.Client
	waitFor(t, 10*time.Second, func() bool {
		var err error
		raw, err = rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true, ForceSingleClient: true})
		return err == nil
	})
	defer raw.Close()
	ctx := context.Background()
	if err := raw.Do(ctx, raw.B().ClusterAddslotsrange().StartSlotEndSlot().StartSlotEndSlot(0, 16383).Build()).Error(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	waitFor(t, 10*time.Second, func() bool {
		info, err := raw.Do(ctx, raw.B().ClusterInfo().Build()).ToString()
		return err == nil && strings.Contains(info, "cluster_state:ok")
	})
	return stop
}

func TestClusterModeStoresAndClearsAcrossSlots(t *testing.T) {
	port := redistest.FreePort(t)
	startClusterNode(t, port)
	c := newCache(t, Options{URL: fmt.Sprintf("redis://127.0.0.1:%d", port), Cluster: true})
	ctx := context.Background()
	for i := range 50 { // keys spread over many slots
		if err := c.Set(ctx, cache.Key{byte(i)}, sampleEntry(), 0); err != nil {
			t.Fatal(err)
		}
	}
	if e, err := c.Get(ctx, cache.Key{7}); err != nil || e == nil {
		t.Fatalf("Get = %v, %v", e, err)
	}
	if err := c.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if e, err := c.Get(ctx, cache.Key{byte(i)}); err != nil || e != nil {
			t.Fatalf("key %d after Clear: %v, %v", i, e, err)
		}
	}
}

func TestClusterModeStartsWhileRedisIsDown(t *testing.T) {
	port := redistest.FreePort(t)
	c := newCache(t, Options{URL: fmt.Sprintf("redis://127.0.0.1:%d", port), Cluster: true})
	ctx := context.Background()
	if _, err := c.Get(ctx, cache.Key{1}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get before the cluster exists = %v, want ErrUnavailable", err)
	}
	startClusterNode(t, port)
	waitFor(t, 10*time.Second, func() bool { return c.Ping(ctx) == nil })
	if err := c.Set(ctx, cache.Key{1}, sampleEntry(), 0); err != nil {
		t.Fatal(err)
	}
	if e, err := c.Get(ctx, cache.Key{1}); err != nil || e == nil {
		t.Fatalf("Get = %v, %v", e, err)
	}
}

func TestEntriesCountsOnlyKeysUnderThePrefixAndCachesTheCount(t *testing.T) {
	s := redistest.Start(t)
	c := newCache(t, Options{URL: s.URL()})
	raw := rawClient(t, s)
	ctx := context.Background()
	var cmds rueidis.Commands
	for i := range 1500 { // more than one SCAN page
		k := cache.Key{byte(i), byte(i >> 8)}
		cmds = append(cmds, raw.B().Set().Key("llm-edge:v1:"+k.String()).Value("x").Build())
	}
	for _, k := range []string{"llm-edge:v2:0011", "session:42", "ratelimit:key-1"} {
		cmds = append(cmds, raw.B().Set().Key(k).Value("other").Build())
	}
	for _, r := range raw.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			t.Fatal(err)
		}
	}
	n, err := c.Entries(ctx, time.Minute)
	if err != nil || n != 1500 {
		t.Fatalf("Entries = %d, %v; want 1500", n, err)
	}
	if err := c.Set(ctx, cache.Key{0xff, 0xff, 0xff}, sampleEntry(), 0); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Entries(ctx, time.Minute); n != 1500 {
		t.Fatalf("a count younger than maxAge was not reused: %d", n)
	}
	if n, _ := c.Entries(ctx, 0); n != 1501 {
		t.Fatalf("Entries with maxAge 0 = %d, want a fresh count of 1501", n)
	}
}

func TestGetManyReturnsEntriesInTheKeysOrder(t *testing.T) {
	s := redistest.Start(t)
	c := newCache(t, Options{URL: s.URL()})
	raw := rawClient(t, s)
	ctx := context.Background()
	want := sampleEntry()
	for _, k := range []cache.Key{{1}, {3}} {
		if err := c.Set(ctx, k, want, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Do(ctx, raw.B().Set().Key("llm-edge:v1:"+cache.Key{4}.String()).Value("not an entry").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	es, err := c.GetMany(ctx, []cache.Key{{1}, {2}, {3}, {4}})
	if !errors.Is(err, cache.ErrCorrupt) {
		t.Fatalf("error %v; want the corrupt entry reported", err)
	}
	if len(es) != 4 || es[0] == nil || es[1] != nil || es[2] == nil || es[3] != nil ||
		string(es[0].Body) != string(want.Body) || string(es[2].Body) != string(want.Body) {
		t.Fatalf("entries %v", es)
	}
	if !c.Healthy() {
		t.Fatal("a corrupt value must not mark Redis unhealthy")
	}
	tiered := cache.NewTiered(cache.Options{L2: c})
	defer tiered.Close()
	if es, tiers := tiered.GetMany(ctx, []cache.Key{{1}, {2}}, 0); es[0] == nil || tiers[0] != cache.TierL2 || es[1] != nil {
		t.Fatalf("tiered: %v %v", es, tiers)
	}
}

// BenchmarkGetMany100 looks up a batch of 100 keys (an embeddings request
// of 100 inputs), half of them stored: one pipelined round trip against a
// Get per key.
func BenchmarkGetMany100(b *testing.B) {
	s := redistest.Start(b)
	c := newCache(b, Options{URL: s.URL()})
	ctx := context.Background()
	keys := make([]cache.Key, 100)
	for i := range keys {
		keys[i] = cache.Key{byte(i), 1}
		if i%2 == 0 {
			if err := c.Set(ctx, keys[i], sampleEntry(), 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("get-each", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, k := range keys {
				if _, err := c.Get(ctx, k); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("get-many", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.GetMany(ctx, keys); err != nil {
				b.Fatal(err)
			}
		}
	})
}
