package app_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

func redisConfig(s *sim, r *redistest.Server) config.Config {
	cfg := simConfig(s)
	cfg.Cache.RedisURL = r.URL()
	// The 50 ms default bounds what a slow Redis adds to a request; on a
	// loaded test machine it would drop L2 writes the tests wait for.
	cfg.Cache.RedisTimeout = config.Duration(2 * time.Second)
	return cfg
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitInL2 waits until the entry for key is in Redis.
func waitInL2(t *testing.T, r *redistest.Server, key string) {
	t.Helper()
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	waitFor(t, "the L2 write of "+key, func() bool {
		n, _ := client.Do(context.Background(), client.B().Exists().Key("llm-edge:v1:"+key).Build()).AsInt64()
		return n == 1
	})
}

func layer(resp *http.Response) string {
	return resp.Header.Get("X-Cache-Status") + "/" + resp.Header.Get("X-Cache-Layer")
}

func TestL2IsSharedByInstancesAndSurvivesRestart(t *testing.T) {
	s := startSim(t, simulated.Options{})
	r := redistest.Start(t)
	a := startGateway(t, redisConfig(s, r))
	b := startGateway(t, redisConfig(s, r))
	body := chat("gpt-4o-mini", "shared through redis")
	first, _ := post(t, a.URL, body)
	if layer(first) != "MISS/" {
		t.Fatalf("first request: %s", layer(first))
	}
	// L2 writes are asynchronous: wait until it landed, without asking the
	// gateway (a premature request would miss and call the provider).
	waitInL2(t, r, first.Header.Get("X-Cache-Key"))
	if resp, _ := post(t, b.URL, body); layer(resp) != "HIT/L2" {
		t.Fatalf("second instance: %s", layer(resp))
	}
	resp, out := post(t, b.URL, body)
	if layer(resp) != "HIT/L1" || gjson.GetBytes(out, "metadata.cache_tier").Str != "l1" {
		t.Fatalf("an L2 hit must fill L1: %s", layer(resp))
	}
	a.Stop()
	c := startGateway(t, redisConfig(s, r)) // a restarted instance: empty L1
	resp, out = post(t, c.URL, body)
	if layer(resp) != "HIT/L2" || !gjson.GetBytes(out, "metadata.cached").Bool() || gjson.GetBytes(out, "metadata.cost_usd").Float() != 0 {
		t.Fatalf("after restart: %s %s", layer(resp), gjson.GetBytes(out, "metadata").Raw)
	}
	if resp, _ = post(t, c.URL, body); layer(resp) != "HIT/L1" {
		t.Fatalf("after restart, second request: %s", layer(resp))
	}
	if s.Calls() != 1 {
		t.Fatalf("provider called %d times, want 1", s.Calls())
	}
}

func TestRedisOutageCausesNoClientErrorsAndRecovers(t *testing.T) {
	s := startSim(t, simulated.Options{})
	r := redistest.Start(t)
	cfg := redisConfig(s, r)
	a := startGateway(t, cfg)
	var wg sync.WaitGroup
	errs := make(chan string, 400)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 75 {
				if w == 0 && i == 20 {
					r.Stop() // Redis dies under load
				}
				resp, body := post(t, a.URL, chat("gpt-4o-mini", "outage "+string(rune('a'+w))+" "+string(rune('a'+i%26))))
				if resp.StatusCode != 200 {
					errs <- string(body)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("client saw an error while Redis was down: %s", e)
	}
	waitFor(t, "/health to report L2 degraded", func() bool {
		resp, err := http.Get(a.URL + "/health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return resp.StatusCode == 200 && gjson.Get(b.String(), "components.cache_l2.status").Str == "degraded" &&
			gjson.Get(b.String(), "status").Str == "degraded"
	})
	r.Restart()
	body := chat("gpt-4o-mini", "after redis came back")
	post(t, a.URL, body)
	b := startGateway(t, cfg)
	waitFor(t, "L2 to be used again without a restart", func() bool {
		resp, _ := post(t, b.URL, body, "Cache-Control: no-store")
		if layer(resp) != "HIT/L2" {
			post(t, a.URL, body, "Cache-Control: no-cache") // rewrite: the first write may have been dropped while reconnecting
			return false
		}
		return true
	})
}

func TestConcurrentIdenticalMissesMakeOneUpstreamCall(t *testing.T) {
	for _, stream := range []bool{false, true} {
		name := "json"
		extra := []string{}
		if stream {
			name, extra = "stream", []string{`"stream":true`}
		}
		t.Run(name, func(t *testing.T) {
			s := startSim(t, simulated.Options{TTFT: 300 * time.Millisecond})
			g := startGateway(t, simConfig(s))
			body := chat("gpt-4o-mini", "coalesce me "+name, extra...)
			var wg sync.WaitGroup
			texts := make([]string, 50)
			for i := range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, out := post(t, g.URL, body)
					if resp.StatusCode != 200 {
						t.Errorf("status %d", resp.StatusCode)
						return
					}
					if stream {
						texts[i], _, _ = streamText(t, sseEvents(t, out))
					} else {
						texts[i] = gjson.GetBytes(out, "choices.0.message.content").Str
					}
				}()
			}
			wg.Wait()
			if n := s.Calls(); n != 1 {
				t.Fatalf("%d upstream calls for 50 identical concurrent requests, want 1", n)
			}
			for i, txt := range texts {
				if txt == "" || txt != texts[0] {
					t.Fatalf("answer %d differs: %q vs %q", i, txt, texts[0])
				}
			}
		})
	}
}

func TestStreamedAnswersAreCapturedAndReplayed(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	tools := `"tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object"}}}]`
	cases := []struct{ name, model, content string }{
		{"openai text", "gpt-4o-mini", "replay text"},
		{"openai tool call", "gpt-4o-mini", "replay SIM_TOOL_CALL"},
		{"anthropic text", "claude-3-5-sonnet-20241022", "replay text"},
		{"anthropic tool call", "claude-3-5-sonnet-20241022", "replay SIM_TOOL_CALL"},
		{"length", "gpt-4o-mini", "replay SIM_WORDS_50"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			extra := []string{tools, `"stream":true`, `"stream_options":{"include_usage":true}`}
			if c.name == "length" {
				extra = append(extra, `"max_tokens":5`)
			}
			miss, missBody := post(t, g.URL, chat(c.model, c.content, extra...))
			hit, hitBody := post(t, g.URL, chat(c.model, c.content, extra...))
			if layer(miss) != "MISS/" || layer(hit) != "HIT/L1" {
				t.Fatalf("miss %s then hit %s", layer(miss), layer(hit))
			}
			a, b := accumulate(t, sseEvents(t, missBody)), accumulate(t, sseEvents(t, hitBody))
			if a != b {
				t.Fatalf("replay differs:\n miss %s\n hit  %s", a, b)
			}
			// The same entry answers a non-streaming request.
			_, jsonBody := post(t, g.URL, chat(c.model, c.content, extra[:len(extra)-2]...), `X-Unused: 1`)
			if c.name == "length" {
				_, jsonBody = post(t, g.URL, chat(c.model, c.content, tools, `"max_tokens":5`))
			}
			j := gjson.ParseBytes(jsonBody)
			if !j.Get("metadata.cached").Bool() {
				t.Fatalf("non-streaming request not served from the streamed entry: %s", j.Get("metadata").Raw)
			}
			if got := summarize(j.Get("choices.0.message.content").Str, j.Get("choices.0.message.tool_calls").Raw, j.Get("choices.0.finish_reason").Str, j.Get("usage.total_tokens").Int()); got != a {
				t.Fatalf("JSON replay differs:\n stream %s\n json   %s", a, got)
			}
		})
	}
	// A JSON miss serves a later stream.
	_, _ = post(t, g.URL, chat("gpt-4o-mini", "json first"))
	resp, body := post(t, g.URL, chat("gpt-4o-mini", "json first", `"stream":true`))
	if layer(resp) != "HIT/L1" {
		t.Fatalf("stream after JSON: %s", layer(resp))
	}
	if txt, fin, _ := streamText(t, sseEvents(t, body)); !strings.HasPrefix(txt, "Simulated answer to: json first") || fin != "stop" {
		t.Fatalf("replayed %q %q", txt, fin)
	}
}

// accumulate folds stream events into a comparable summary.
func accumulate(t *testing.T, events []string) string {
	t.Helper()
	var text, finish string
	var usage int64
	type tc struct{ id, name, args string }
	var calls []tc
	for _, e := range events {
		if e == "[DONE]" {
			continue
		}
		c := gjson.Parse(e)
		text += c.Get("choices.0.delta.content").Str
		c.Get("choices.0.delta.tool_calls").ForEach(func(_, v gjson.Result) bool {
			i := int(v.Get("index").Int())
			for len(calls) <= i {
				calls = append(calls, tc{})
			}
			if v.Get("id").Str != "" {
				calls[i].id = v.Get("id").Str
			}
			calls[i].name += v.Get("function.name").Str
			calls[i].args += v.Get("function.arguments").Str
			return true
		})
		if f := c.Get("choices.0.finish_reason").Str; f != "" {
			finish = f
		}
		if u := c.Get("usage.total_tokens"); u.Exists() {
			usage = u.Int()
		}
	}
	raw := "["
	for i, c := range calls {
		if i > 0 {
			raw += ","
		}
		raw += `{"id":"` + c.id + `","name":"` + c.name + `","args":` + quote(c.args) + `}`
	}
	return summarize(text, raw+"]", finish, usage)
}

func summarize(text, toolCalls, finish string, usage int64) string {
	calls := gjson.Parse(toolCalls)
	norm := "["
	calls.ForEach(func(_, v gjson.Result) bool {
		name, args := v.Get("function.name").Str, v.Get("function.arguments").Str
		if name == "" {
			name, args = v.Get("name").Str, v.Get("args").Str
		}
		norm += v.Get("id").Str + ":" + name + ":" + args + ";"
		return true
	})
	return "text=" + quote(text) + " tools=" + norm + "] finish=" + finish + " usage=" + itoa(usage)
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for n > 0 {
		s = string(rune('0'+n%10)) + s
		n /= 10
	}
	return s
}

func TestBrokenStreamsAreNeverStored(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	cfg.Routing.MaxRetries = 0
	g := startGateway(t, cfg)
	for _, c := range []struct{ model, word string }{
		{"gpt-4o-mini", "SIM_CUT_STREAM"}, {"gpt-4o-mini", "SIM_STREAM_ERROR"},
		{"claude-3-5-sonnet-20241022", "SIM_CUT_STREAM"}, {"claude-3-5-sonnet-20241022", "SIM_STREAM_ERROR"},
	} {
		t.Run(c.model+"/"+c.word, func(t *testing.T) {
			body := chat(c.model, "broken "+c.word, `"stream":true`)
			before := s.Calls()
			_, out := post(t, g.URL, body)
			ev := sseEvents(t, out)
			if len(ev) == 0 || ev[len(ev)-1] == "[DONE]" || !gjson.Get(ev[len(ev)-1], "error").Exists() {
				t.Fatalf("a broken stream must end with an error event, not [DONE]: %q", ev)
			}
			resp, _ := post(t, g.URL, body)
			if layer(resp) != "MISS/" || s.Calls() != before+2 {
				t.Fatalf("broken answer was cached: %s, calls %d", layer(resp), s.Calls()-before)
			}
		})
	}
}

func TestCacheKeyFollowsTheFieldsThatChangeTheAnswer(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	base := `{"model":"gpt-4o-mini","temperature":0.5,"messages":[{"role":"user","content":"key test"}]}`
	resp, _ := post(t, g.URL, base)
	key := resp.Header.Get("X-Cache-Key")
	tests := []struct {
		name, body string
		header     string
		hit        bool
	}{
		{"reordered and spaced", "{ \"messages\" : [ {\"content\":\"key test\", \"role\":\"user\"} ],\n \"temperature\": 0.50, \"model\":\"gpt-4o-mini\" }", "", true},
		{"user and metadata ignored", `{"model":"gpt-4o-mini","temperature":0.5,"user":"u1","metadata":{"a":"b"},"messages":[{"role":"user","content":"key test"}]}`, "", true},
		{"stream ignored", `{"model":"gpt-4o-mini","temperature":0.5,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"key test"}]}`, "", true},
		{"temperature", `{"model":"gpt-4o-mini","temperature":0.6,"messages":[{"role":"user","content":"key test"}]}`, "", false},
		{"whitespace inside text", `{"model":"gpt-4o-mini","temperature":0.5,"messages":[{"role":"user","content":"key  test"}]}`, "", false},
		{"model", `{"model":"gpt-4o","temperature":0.5,"messages":[{"role":"user","content":"key test"}]}`, "", false},
		{"tools", `{"model":"gpt-4o-mini","temperature":0.5,"tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"user","content":"key test"}]}`, "", false},
		{"response_format", `{"model":"gpt-4o-mini","temperature":0.5,"response_format":{"type":"json_object"},"messages":[{"role":"user","content":"key test"}]}`, "", false},
		{"unknown field", `{"model":"gpt-4o-mini","temperature":0.5,"future_knob":1,"messages":[{"role":"user","content":"key test"}]}`, "", false},
		{"namespace", base, "X-Cache-Namespace: tenant-b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h []string
			if tt.header != "" {
				h = append(h, tt.header)
			}
			resp, _ := post(t, g.URL, tt.body, h...)
			hit := resp.Header.Get("X-Cache-Status") == "HIT"
			if hit != tt.hit || (resp.Header.Get("X-Cache-Key") == key) != tt.hit {
				t.Fatalf("hit=%v key=%s (base %s), want hit=%v", hit, resp.Header.Get("X-Cache-Key"), key, tt.hit)
			}
		})
	}
}

func TestCacheControlAndAdminEndpoints(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	body := chat("gpt-4o-mini", "cache control")
	if resp, _ := post(t, g.URL, body, "Cache-Control: no-store"); layer(resp) != "MISS/" {
		t.Fatal(layer(resp))
	}
	if resp, _ := post(t, g.URL, body); layer(resp) != "MISS/" {
		t.Fatalf("no-store wrote the answer: %s", layer(resp))
	}
	calls := s.Calls()
	if resp, _ := post(t, g.URL, body, "Cache-Control: no-cache"); layer(resp) != "BYPASS/" || s.Calls() != calls+1 {
		t.Fatalf("no-cache: %s, %d upstream calls", layer(resp), s.Calls()-calls)
	}
	if resp, _ := post(t, g.URL, body); layer(resp) != "HIT/L1" {
		t.Fatalf("after no-cache (which stores): %s", layer(resp))
	}
	if resp, _ := post(t, g.URL, body, "Cache-Control: max-age=3600"); layer(resp) != "HIT/L1" {
		t.Fatalf("fresh entry with max-age: %s", layer(resp))
	}
	short := chat("gpt-4o-mini", "short ttl")
	if resp, _ := post(t, g.URL, short, "X-Cache-TTL: 1"); resp.StatusCode != 200 {
		t.Fatal("X-Cache-TTL rejected")
	}
	if resp, _ := post(t, g.URL, short); layer(resp) != "HIT/L1" {
		t.Fatalf("entry written with X-Cache-TTL: %s", layer(resp))
	}
	// One wait serves both max-age and X-Cache-TTL (the fake-clock tests in
	// internal/cache cover the boundaries).
	time.Sleep(1100 * time.Millisecond)
	if resp, _ := post(t, g.URL, short); layer(resp) != "MISS/" {
		t.Fatalf("entry outlived X-Cache-TTL: %s", layer(resp))
	}
	if resp, _ := post(t, g.URL, body, "Cache-Control: max-age=1"); layer(resp) != "MISS/" {
		t.Fatalf("entry older than max-age served: %s", layer(resp))
	}
	resp, _ := post(t, g.URL, body)
	key := resp.Header.Get("X-Cache-Key")
	if code := deleteCache(t, g.URL+"/admin/cache/"+key); code != 200 {
		t.Fatalf("delete key: %d", code)
	}
	if resp, _ := post(t, g.URL, body); layer(resp) != "MISS/" {
		t.Fatalf("deleted entry served: %s", layer(resp))
	}
	if code := deleteCache(t, g.URL+"/admin/cache"); code != 200 {
		t.Fatalf("clear: %d", code)
	}
	if resp, _ := post(t, g.URL, body); layer(resp) != "MISS/" {
		t.Fatalf("cleared entry served: %s", layer(resp))
	}

	off := simConfig(s)
	off.Cache.Enabled = false
	g2 := startGateway(t, off)
	for range 2 {
		if resp, _ := post(t, g2.URL, body); layer(resp) != "BYPASS/" {
			t.Fatalf("cache disabled: %s", layer(resp))
		}
	}
}

func TestCorruptL2ValueIsAMiss(t *testing.T) {
	s := startSim(t, simulated.Options{})
	r := redistest.Start(t)
	a := startGateway(t, redisConfig(s, r))
	body := chat("gpt-4o-mini", "corrupt me")
	resp, _ := post(t, a.URL, body)
	key := resp.Header.Get("X-Cache-Key")
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()
	waitFor(t, "the L2 write", func() bool {
		n, _ := client.Do(ctx, client.B().Exists().Key("llm-edge:v1:"+key).Build()).AsInt64()
		return n == 1
	})
	if err := client.Do(ctx, client.B().Set().Key("llm-edge:v1:"+key).Value("garbage\x00\xff").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	b := startGateway(t, redisConfig(s, r))
	resp, out := post(t, b.URL, body)
	if resp.StatusCode != 200 || layer(resp) != "MISS/" || !strings.HasPrefix(gjson.GetBytes(out, "choices.0.message.content").Str, "Simulated answer to: corrupt me") {
		t.Fatalf("corrupt value: %d %s %s", resp.StatusCode, layer(resp), out)
	}
}
