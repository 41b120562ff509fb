package app_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/tidwall/gjson"
	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

// These tests complement cache_e2e_test.go: what the cache stores in Redis
// (lifetimes, deletions, damaged values), what a hit answers, and how
// coalescing behaves when requests differ in form or the leader goes away.

const l2Prefix = "llm-edge:v1:" // internal/cache/redis.DefaultPrefix

// rawRedis is a plain client on r, to look at and tamper with L2 directly.
func rawRedis(t *testing.T, r *redistest.Server) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func l2Exists(c rueidis.Client, key string) bool {
	n, err := c.Do(context.Background(), c.B().Exists().Key(l2Prefix+key).Build()).AsInt64()
	return err == nil && n == 1
}

// health returns /health's status code and body.
func health(t *testing.T, url string) (int, gjson.Result) {
	t.Helper()
	resp, err := http.Get(url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, gjson.ParseBytes(b)
}

func deleteCache(t *testing.T, url string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestL1HitsAnswerWithoutTheProviderAndReportWhatTheySaved(t *testing.T) {
	s := startSim(t, simulated.Options{})
	r := redistest.Start(t)
	g := startGateway(t, redisConfig(s, r))
	body := chat("gpt-4o-mini", "hit metadata")
	miss, missBody := post(t, g.URL, body)
	if layer(miss) != "MISS/" || gjson.GetBytes(missBody, "metadata.cached").Bool() {
		t.Fatalf("first request: %s %s", layer(miss), gjson.GetBytes(missBody, "metadata").Raw)
	}
	paid := gjson.GetBytes(missBody, "metadata.cost_usd").Float()
	for i := range 5 {
		resp, out := post(t, g.URL, body)
		m := gjson.GetBytes(out, "metadata")
		if layer(resp) != "HIT/L1" || !m.Get("cached").Bool() || m.Get("cache_tier").Str != "l1" {
			t.Fatalf("hit %d: %s %s", i, layer(resp), m.Raw)
		}
		if m.Get("cost_usd").Float() != 0 || m.Get("saved_cost_usd").Float() != paid || paid <= 0 {
			t.Fatalf("hit %d: cost %v saved %v, want 0 and what the miss cost (%v)", i, m.Get("cost_usd").Float(), m.Get("saved_cost_usd").Float(), paid)
		}
		if got, want := gjson.GetBytes(out, "choices").Raw, gjson.GetBytes(missBody, "choices").Raw; got != want {
			t.Fatalf("hit %d answers differently:\n%s\n%s", i, got, want)
		}
		if resp.Header.Get("X-Cache-Key") != miss.Header.Get("X-Cache-Key") {
			t.Fatalf("hit %d: key %q, miss had %q", i, resp.Header.Get("X-Cache-Key"), miss.Header.Get("X-Cache-Key"))
		}
	}
	if s.Calls() != 1 {
		t.Fatalf("provider called %d times for one miss and five hits", s.Calls())
	}
}

func TestRedisOutageKeepsL1ServingAndHealthRecovers(t *testing.T) {
	s := startSim(t, simulated.Options{})
	r := redistest.Start(t)
	g := startGateway(t, redisConfig(s, r))
	if code, h := health(t, g.URL); code != 200 || h.Get("components.cache_l2.status").Str != "healthy" {
		t.Fatalf("before: %d %s", code, h.Raw)
	}
	cached := chat("gpt-4o-mini", "cached before the outage")
	post(t, g.URL, cached)
	r.Stop()
	if resp, _ := post(t, g.URL, cached); layer(resp) != "HIT/L1" {
		t.Fatalf("L1 entry while Redis is down: %s", layer(resp))
	}
	if resp, out := post(t, g.URL, chat("gpt-4o-mini", "new during the outage")); resp.StatusCode != 200 || layer(resp) != "MISS/" {
		t.Fatalf("miss while Redis is down: %d %s %s", resp.StatusCode, layer(resp), out)
	}
	if code, h := health(t, g.URL); code != 200 || h.Get("components.cache_l2.status").Str != "degraded" {
		t.Fatalf("while Redis is down: %d %s", code, h.Raw)
	}
	r.Restart()
	waitFor(t, "/health to report L2 healthy again", func() bool {
		code, h := health(t, g.URL)
		return code == 200 && h.Get("components.cache_l2.status").Str == "healthy"
	})
}

func TestCoalescingJoinsStreamingAndJSONRequestsForOneAnswer(t *testing.T) {
	s := startSim(t, simulated.Options{TTFT: 200 * time.Millisecond})
	g := startGateway(t, simConfig(s))
	const n = 40
	var wg sync.WaitGroup
	texts := make([]string, n)
	for i := range n {
		wg.Go(func() {
			stream := i%2 == 1
			extra := []string{}
			if stream {
				extra = append(extra, `"stream":true`)
			}
			resp, out := post(t, g.URL, chat("gpt-4o-mini", "one answer, two forms", extra...))
			if resp.StatusCode != 200 {
				t.Errorf("request %d: %d %s", i, resp.StatusCode, out)
				return
			}
			if stream {
				ev := sseEvents(t, out)
				if len(ev) == 0 || ev[len(ev)-1] != "[DONE]" {
					t.Errorf("request %d: stream did not end with [DONE]: %q", i, ev)
				}
				texts[i], _, _ = streamText(t, ev)
			} else {
				texts[i] = gjson.GetBytes(out, "choices.0.message.content").Str
			}
		})
	}
	wg.Wait()
	if c := s.Calls(); c != 1 {
		t.Fatalf("%d upstream calls for %d identical requests (half streamed), want 1", c, n)
	}
	for i, txt := range texts {
		if txt == "" || txt != texts[0] {
			t.Fatalf("answer %d: %q, answer 0: %q", i, txt, texts[0])
		}
	}
}

func TestCoalescedFollowersAreAnsweredWhenTheLeaderGoesAway(t *testing.T) {
	s := startSim(t, simulated.Options{TTFT: 300 * time.Millisecond})
	g := startGateway(t, simConfig(s))
	body := chat("gpt-4o-mini", "the leader hangs up", `"stream":true`)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	leaderDone := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		leaderDone <- err
	}()
	// The leader's upstream call has started: followers now join it.
	waitFor(t, "the leader's upstream call", func() bool { return s.Calls() == 1 })
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			resp, out := post(t, g.URL, body)
			ev := sseEvents(t, out)
			txt, fin, _ := streamText(t, ev)
			if resp.StatusCode != 200 || len(ev) == 0 || ev[len(ev)-1] != "[DONE]" || fin != "stop" ||
				!strings.HasPrefix(txt, "Simulated answer to: the leader hangs up") {
				t.Errorf("follower %d after the leader left: %d %q", i, resp.StatusCode, ev)
			}
		})
	}
	// Followers wait in the group for the leader; drop the leader once
	// they are all in flight.
	waitFor(t, "followers to reach the gateway", func() bool { return inflight(t, g.URL) >= 9 })
	cancel()
	if err := <-leaderDone; err == nil {
		t.Fatal("the leader's request finished before it was cancelled (TTFT too short?)")
	}
	wg.Wait()
}

// inflight reads llm_edge_inflight_requests from /metrics.
func inflight(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "llm_edge_inflight_requests "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return n
		}
	}
	t.Fatal("llm_edge_inflight_requests not exported")
	return 0
}

func TestStreamedAnswersReplayFromL2OnAnotherInstance(t *testing.T) {
	// Registered first, so it runs after the gateways, Redis and the
	// provider have stopped: L2 writers and Redis clients must be gone.
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	s := startSim(t, simulated.Options{})
	r := redistest.Start(t)
	redis := rawRedis(t, r)
	a := startGateway(t, redisConfig(s, r))
	b := startGateway(t, redisConfig(s, r))
	tools := `"tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object"}}}]`
	for _, c := range []struct{ name, model, content string }{
		{"openai text", "gpt-4o-mini", "l2 replay text"},
		{"openai tool call", "gpt-4o-mini", "l2 replay SIM_TOOL_CALL"},
		{"anthropic text", "claude-3-5-sonnet-20241022", "l2 replay text"},
		{"anthropic tool call", "claude-3-5-sonnet-20241022", "l2 replay SIM_TOOL_CALL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			streamed := chat(c.model, c.content, tools, `"stream":true`, `"stream_options":{"include_usage":true}`)
			miss, missBody := post(t, a.URL, streamed)
			if layer(miss) != "MISS/" {
				t.Fatalf("first request: %s", layer(miss))
			}
			want := accumulate(t, sseEvents(t, missBody))
			key := miss.Header.Get("X-Cache-Key")
			waitFor(t, "the L2 write", func() bool { return l2Exists(redis, key) })

			hit, hitBody := post(t, b.URL, streamed, "Cache-Control: no-store") // keep B's L1 empty
			if layer(hit) != "HIT/L2" {
				t.Fatalf("stream on the other instance: %s", layer(hit))
			}
			if got := accumulate(t, sseEvents(t, hitBody)); got != want {
				t.Fatalf("L2 stream replay differs:\n miss %s\n hit  %s", want, got)
			}
			hit, jsonBody := post(t, b.URL, chat(c.model, c.content, tools))
			if layer(hit) != "HIT/L1" { // the L2 hit above filled B's L1
				t.Fatalf("JSON on the other instance: %s", layer(hit))
			}
			j := gjson.ParseBytes(jsonBody)
			got := summarize(j.Get("choices.0.message.content").Str, j.Get("choices.0.message.tool_calls").Raw, j.Get("choices.0.finish_reason").Str, j.Get("usage.total_tokens").Int())
			if got != want {
				t.Fatalf("JSON replay differs:\n stream %s\n json   %s", want, got)
			}
		})
	}
	if s.Calls() != 4 {
		t.Fatalf("%d upstream calls for four distinct answers", s.Calls())
	}
}

func TestJSONAnswersReplayAsStreamsWithTheSameContent(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	tools := `"tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object"}}}]`
	for _, c := range []struct{ name, model, content string }{
		{"openai text", "gpt-4o-mini", "json then stream"},
		{"openai tool call", "gpt-4o-mini", "json then stream SIM_TOOL_CALL"},
		{"anthropic text", "claude-3-5-sonnet-20241022", "json then stream"},
		{"anthropic tool call", "claude-3-5-sonnet-20241022", "json then stream SIM_TOOL_CALL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			miss, out := post(t, g.URL, chat(c.model, c.content, tools))
			if layer(miss) != "MISS/" {
				t.Fatalf("first request: %s", layer(miss))
			}
			j := gjson.ParseBytes(out)
			want := summarize(j.Get("choices.0.message.content").Str, j.Get("choices.0.message.tool_calls").Raw, j.Get("choices.0.finish_reason").Str, j.Get("usage.total_tokens").Int())

			hit, body := post(t, g.URL, chat(c.model, c.content, tools, `"stream":true`, `"stream_options":{"include_usage":true}`))
			if layer(hit) != "HIT/L1" || !strings.HasPrefix(hit.Header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("stream after JSON: %s %s", layer(hit), hit.Header.Get("Content-Type"))
			}
			if got := accumulate(t, sseEvents(t, body)); got != want {
				t.Fatalf("stream replay of a JSON answer differs:\n json   %s\n stream %s", want, got)
			}
			// Without stream_options.include_usage the replay, like the
			// provider, sends no usage.
			_, body = post(t, g.URL, chat(c.model, c.content, tools, `"stream":true`))
			for _, e := range sseEvents(t, body) {
				if gjson.Get(e, "usage").Type == gjson.JSON {
					t.Fatalf("usage replayed to a client that did not ask for it: %s", e)
				}
			}
		})
	}
	if s.Calls() != 4 {
		t.Fatalf("%d upstream calls for four distinct answers", s.Calls())
	}
}

func TestStreamedChoicesAreAllCapturedAndReplayed(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	streamed := chat("gpt-4o-mini", "two choices", `"n":2`, `"stream":true`)
	_, out := post(t, g.URL, streamed)
	texts := map[int64]string{}
	for _, e := range sseEvents(t, out) {
		gjson.Get(e, "choices").ForEach(func(_, c gjson.Result) bool {
			texts[c.Get("index").Int()] += c.Get("delta.content").Str
			return true
		})
	}
	if len(texts) != 2 || texts[0] == texts[1] {
		t.Fatalf("the provider streamed %d choices: %v", len(texts), texts)
	}
	resp, body := post(t, g.URL, chat("gpt-4o-mini", "two choices", `"n":2`))
	if layer(resp) != "HIT/L1" {
		t.Fatalf("JSON after the stream: %s", layer(resp))
	}
	for i := range int64(2) {
		c := gjson.GetBytes(body, "choices."+strconv.FormatInt(i, 10))
		if c.Get("message.content").Str != texts[i] || c.Get("finish_reason").Str != "stop" || c.Get("index").Int() != i {
			t.Fatalf("choice %d: %s, streamed %q", i, c.Raw, texts[i])
		}
	}
}

func TestStreamHitsAreSentWithoutTheProvidersPacing(t *testing.T) {
	s := startSim(t, simulated.Options{ChunkDelay: 25 * time.Millisecond, Words: 60})
	g := startGateway(t, simConfig(s))
	body := chat("gpt-4o-mini", "paced stream", `"stream":true`)
	start := time.Now()
	post(t, g.URL, body)
	missTook := time.Since(start)
	start = time.Now()
	resp, out := post(t, g.URL, body)
	hitTook := time.Since(start)
	if layer(resp) != "HIT/L1" || len(sseEvents(t, out)) < 3 {
		t.Fatalf("hit: %s %q", layer(resp), out)
	}
	if missTook < 300*time.Millisecond || hitTook > missTook/4 {
		t.Fatalf("miss took %v (paced at 25 ms a chunk), hit took %v: a replay must not be paced", missTook, hitTook)
	}
}

func TestInvalidCacheHeadersAreRejectedBeforeTheProvider(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	for _, h := range []string{
		"Cache-Control: max-age=soon",
		"Cache-Control: max-age=-1",
		"Cache-Control: no-store, max-age=1.5",
		"X-Cache-TTL: 0",
		"X-Cache-TTL: -5",
		"X-Cache-TTL: ten",
		"X-Cache-TTL: 99999999999",
	} {
		t.Run(h, func(t *testing.T) {
			resp, out := post(t, g.URL, chat("gpt-4o-mini", "bad header"), h)
			name, _, _ := strings.Cut(h, ":")
			if resp.StatusCode != 400 || gjson.GetBytes(out, "error.type").Str != "invalid_request_error" ||
				!strings.EqualFold(gjson.GetBytes(out, "error.param").Str, name) {
				t.Fatalf("%d %s", resp.StatusCode, out)
			}
		})
	}
	if s.Calls() != 0 {
		t.Fatalf("provider called %d times for rejected requests", s.Calls())
	}
	// Unknown directives are ignored, as HTTP caches do.
	if resp, out := post(t, g.URL, chat("gpt-4o-mini", "bad header"), "Cache-Control: must-revalidate, private"); resp.StatusCode != 200 {
		t.Fatalf("unknown directive: %d %s", resp.StatusCode, out)
	}
}

func TestNoStoreAnswersNeverReachRedis(t *testing.T) {
	s := startSim(t, simulated.Options{})
	r := redistest.Start(t)
	redis := rawRedis(t, r)
	g := startGateway(t, redisConfig(s, r))
	resp, _ := post(t, g.URL, chat("gpt-4o-mini", "private answer"), "Cache-Control: no-store")
	private := resp.Header.Get("X-Cache-Key")
	// A later stored answer goes through the same write queue.
	resp, _ = post(t, g.URL, chat("gpt-4o-mini", "public answer"))
	public := resp.Header.Get("X-Cache-Key")
	waitFor(t, "the stored answer in L2", func() bool { return l2Exists(redis, public) })
	if l2Exists(redis, private) {
		t.Fatal("a no-store answer was written to Redis")
	}
	if resp, _ := post(t, g.URL, chat("gpt-4o-mini", "private answer")); layer(resp) != "MISS/" {
		t.Fatalf("a no-store answer was served: %s", layer(resp))
	}
}

func TestRedisEntriesLiveForTheirTTL(t *testing.T) {
	s := startSim(t, simulated.Options{})
	r := redistest.Start(t)
	redis := rawRedis(t, r)
	cfg := redisConfig(s, r)
	cfg.Cache.L2TTL = config.Duration(1800 * time.Second)
	g := startGateway(t, cfg)
	for _, c := range []struct {
		name, header string
		want         time.Duration
	}{
		{"configured", "", 1800 * time.Second},
		{"X-Cache-TTL", "X-Cache-TTL: 120", 120 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			var h []string
			if c.header != "" {
				h = append(h, c.header)
			}
			resp, _ := post(t, g.URL, chat("gpt-4o-mini", "ttl "+c.name), h...)
			key := resp.Header.Get("X-Cache-Key")
			waitFor(t, "the L2 write", func() bool { return l2Exists(redis, key) })
			ms, err := redis.Do(context.Background(), redis.B().Pttl().Key(l2Prefix+key).Build()).AsInt64()
			if err != nil {
				t.Fatal(err)
			}
			if got := time.Duration(ms) * time.Millisecond; got > c.want || got < c.want-10*time.Second {
				t.Fatalf("Redis TTL %v, want %v", got, c.want)
			}
		})
	}
}

func TestAdminDeletionsReachRedisAndSpareOtherData(t *testing.T) {
	s := startSim(t, simulated.Options{})
	r := redistest.Start(t)
	redis := rawRedis(t, r)
	ctx := context.Background()
	if err := redis.Do(ctx, redis.B().Set().Key("someone-else:data").Value("keep").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	a := startGateway(t, redisConfig(s, r))
	one, two := chat("gpt-4o-mini", "delete me"), chat("gpt-4o-mini", "clear me")
	resp, _ := post(t, a.URL, one)
	k1 := resp.Header.Get("X-Cache-Key")
	resp, _ = post(t, a.URL, two)
	k2 := resp.Header.Get("X-Cache-Key")
	waitFor(t, "both L2 writes", func() bool { return l2Exists(redis, k1) && l2Exists(redis, k2) })

	if code := deleteCache(t, a.URL+"/admin/cache/not-a-key"); code != 400 {
		t.Fatalf("DELETE of a malformed key: %d", code)
	}
	if code := deleteCache(t, a.URL+"/admin/cache/"+k1); code != 200 {
		t.Fatalf("DELETE key: %d", code)
	}
	if l2Exists(redis, k1) || !l2Exists(redis, k2) {
		t.Fatalf("after deleting one key: %s in L2 %v, %s in L2 %v", k1, l2Exists(redis, k1), k2, l2Exists(redis, k2))
	}
	b := startGateway(t, redisConfig(s, r)) // empty L1: sees only L2
	if resp, _ := post(t, b.URL, one, "Cache-Control: no-store"); layer(resp) != "MISS/" {
		t.Fatalf("deleted key on another instance: %s", layer(resp))
	}
	if resp, _ := post(t, b.URL, two, "Cache-Control: no-store"); layer(resp) != "HIT/L2" {
		t.Fatalf("kept key on another instance: %s", layer(resp))
	}

	if code := deleteCache(t, a.URL+"/admin/cache"); code != 200 {
		t.Fatalf("DELETE all: %d", code)
	}
	if l2Exists(redis, k2) {
		t.Fatal("DELETE /admin/cache left an entry in Redis")
	}
	if v, err := redis.Do(ctx, redis.B().Get().Key("someone-else:data").Build()).ToString(); err != nil || v != "keep" {
		t.Fatalf("DELETE /admin/cache touched data outside its prefix: %q %v", v, err)
	}
	// Another instance's L1 keeps the entry until its L1 TTL (deletion is
	// documented to reach this instance's L1 and the shared L2 only); a
	// fresh instance finds nothing.
	c := startGateway(t, redisConfig(s, r))
	for name, g := range map[string]*gw{"cleared instance": a, "fresh instance": c} {
		if resp, _ := post(t, g.URL, two, "Cache-Control: no-store"); layer(resp) != "MISS/" {
			t.Fatalf("%s after clearing: %s", name, layer(resp))
		}
	}
}

func TestDamagedL2ValuesAreMissesAndGetReplaced(t *testing.T) {
	s := startSim(t, simulated.Options{})
	r := redistest.Start(t)
	redis := rawRedis(t, r)
	ctx := context.Background()
	a := startGateway(t, redisConfig(s, r))
	for _, c := range []struct {
		name   string
		damage func(valid []byte) []byte
	}{
		{"garbage", func([]byte) []byte { return []byte("not an entry \x00\xff") }},
		{"empty", func([]byte) []byte { return nil }},
		{"truncated", func(v []byte) []byte { return v[:len(v)/2] }},
		{"one flipped byte", func(v []byte) []byte {
			v = append([]byte(nil), v...)
			v[len(v)/2] ^= 0x20
			return v
		}},
		{"future format version", func(v []byte) []byte {
			v = append([]byte(nil), v...)
			v[1]++
			return v
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := chat("gpt-4o-mini", "damaged "+c.name)
			resp, want := post(t, a.URL, body)
			key := l2Prefix + resp.Header.Get("X-Cache-Key")
			waitFor(t, "the L2 write", func() bool { return l2Exists(redis, resp.Header.Get("X-Cache-Key")) })
			valid, err := redis.Do(ctx, redis.B().Get().Key(key).Build()).AsBytes()
			if err != nil {
				t.Fatal(err)
			}
			if err := redis.Do(ctx, redis.B().Set().Key(key).Value(rueidis.BinaryString(c.damage(valid))).Build()).Error(); err != nil {
				t.Fatal(err)
			}
			b := startGateway(t, redisConfig(s, r))
			resp, out := post(t, b.URL, body)
			if resp.StatusCode != 200 || layer(resp) != "MISS/" ||
				gjson.GetBytes(out, "choices.0.message.content").Str != gjson.GetBytes(want, "choices.0.message.content").Str {
				t.Fatalf("damaged value: %d %s %s", resp.StatusCode, layer(resp), out)
			}
			// The fresh answer overwrites the damaged value.
			waitFor(t, "the damaged value to be replaced", func() bool {
				v, err := redis.Do(ctx, redis.B().Get().Key(key).Build()).AsBytes()
				return err == nil && string(v) != string(c.damage(valid))
			})
			resp, _ = post(t, startGateway(t, redisConfig(s, r)).URL, body)
			if layer(resp) != "HIT/L2" {
				t.Fatalf("after the rewrite: %s", layer(resp))
			}
		})
	}
}

func TestAnswersCutByMaxTokensAreCached(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	for _, model := range []string{"gpt-4o-mini", "claude-3-5-sonnet-20241022"} {
		t.Run(model, func(t *testing.T) {
			body := chat(model, "SIM_WORDS_40 cut short", `"max_tokens":5`)
			resp, out := post(t, g.URL, body)
			if layer(resp) != "MISS/" || gjson.GetBytes(out, "choices.0.finish_reason").Str != "length" {
				t.Fatalf("first: %s %s", layer(resp), out)
			}
			hit, hitOut := post(t, g.URL, body)
			if layer(hit) != "HIT/L1" || gjson.GetBytes(hitOut, "choices.0.finish_reason").Str != "length" ||
				gjson.GetBytes(hitOut, "choices.0.message.content").Str != gjson.GetBytes(out, "choices.0.message.content").Str {
				t.Fatalf("second: %s %s", layer(hit), hitOut)
			}
			// A larger budget is another question.
			if resp, _ := post(t, g.URL, chat(model, "SIM_WORDS_40 cut short", `"max_tokens":50`)); layer(resp) != "MISS/" {
				t.Fatalf("max_tokens 50 after max_tokens 5: %s", layer(resp))
			}
		})
	}
}

func TestDisabledCacheNeitherReadsNorWritesRedis(t *testing.T) {
	s := startSim(t, simulated.Options{})
	r := redistest.Start(t)
	redis := rawRedis(t, r)
	cfg := redisConfig(s, r)
	cfg.Cache.Enabled = false
	g := startGateway(t, cfg)
	body := chat("gpt-4o-mini", "cache off")
	for i := range 3 {
		resp, out := post(t, g.URL, body)
		if resp.StatusCode != 200 || layer(resp) != "BYPASS/" || gjson.GetBytes(out, "metadata.cached").Bool() {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, layer(resp))
		}
	}
	if s.Calls() != 3 {
		t.Fatalf("provider called %d times for 3 requests with the cache off", s.Calls())
	}
	// Prove the gateway would have written by now: another instance with
	// the cache on writes through the same Redis.
	on := startGateway(t, redisConfig(s, r))
	resp, _ := post(t, on.URL, chat("gpt-4o-mini", "cache on"))
	waitFor(t, "the enabled instance's write", func() bool { return l2Exists(redis, resp.Header.Get("X-Cache-Key")) })
	keys, err := redis.Do(context.Background(), redis.B().Keys().Pattern(l2Prefix+"*").Build()).AsStrSlice()
	if err != nil || len(keys) != 1 {
		t.Fatalf("Redis holds %q (%v); only the enabled instance's entry expected", keys, err)
	}
}

// blackHole accepts connections and never answers: a Redis that hangs.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "redis://" + ln.Addr().String()
}

func TestHangingRedisCostsAtMostItsCallTimeout(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	cfg.Cache.RedisURL = blackHole(t)
	g := startGateway(t, cfg) // start-up waits for the dial timeout, not forever
	const n = 20
	start := time.Now()
	for i := range n {
		body := chat("gpt-4o-mini", "hanging redis "+strconv.Itoa(i%5))
		resp, out := post(t, g.URL, body)
		if resp.StatusCode != 200 || (i < 5) != (layer(resp) == "MISS/") {
			t.Fatalf("request %d: %d %s %s", i, resp.StatusCode, layer(resp), out)
		}
	}
	// Each miss may wait for one L2 lookup (50 ms), hits are served by L1
	// before L2 is asked, and writes never wait.
	if took := time.Since(start); took > 5*100*time.Millisecond+n*20*time.Millisecond {
		t.Fatalf("%d requests took %v with a hanging Redis", n, took)
	}
	if _, h := health(t, g.URL); h.Get("components.cache_l2.status").Str != "degraded" {
		t.Fatalf("health with a hanging Redis: %s", h.Raw)
	}
}
