package simulated

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// dialects lists both wire formats with their request builder and how to
// read an error's type from their error body.
var dialects = []struct {
	name, path string
	req        func(prompt, extra string) string
	errType    string // gjson path of the error type
	done       string // what a complete stream ends with
}{
	{"openai", "/v1/chat/completions", openAIReq, "error.type", "[DONE]"},
	{"anthropic", "/v1/messages", anthropicReq, "error.type", `{"type":"message_stop"}`},
}

func TestMagicErrorWordsAnswerWithProviderErrors(t *testing.T) {
	cases := []struct {
		word       string
		status     int
		openAIType string
		anthType   string
	}{
		{"SIM_ERROR_400", 400, "invalid_request_error", "invalid_request_error"},
		{"SIM_ERROR_429", 429, "requests", "rate_limit_error"},
		{"SIM_ERROR_500", 500, "server_error", "api_error"},
	}
	for _, d := range dialects {
		for _, tc := range cases {
			for _, stream := range []string{"", `,"stream":true`} {
				t.Run(d.name+"/"+tc.word+stream, func(t *testing.T) {
					_, ts := start(t, Options{RetryAfter: 3 * time.Second})
					root := mustJSON(t, post(t, ts, d.path, d.req("please "+tc.word+" now", stream)), tc.status)
					wantType := tc.openAIType
					if d.name == "anthropic" {
						wantType = tc.anthType
						if root.Get("type").Str != "error" {
							t.Errorf("anthropic error without type error: %s", root.Raw)
						}
					} else {
						for _, f := range []string{"message", "type", "param", "code"} {
							if !root.Get("error." + f).Exists() {
								t.Errorf("openai error lacks %s: %s", f, root.Raw)
							}
						}
					}
					if got := root.Get(d.errType).Str; got != wantType {
						t.Errorf("error type %q, want %q", got, wantType)
					}
					if tc.status == 400 && !strings.Contains(root.Get("error.message").Str, "SIM_ERROR_400") {
						t.Errorf("400 message does not name the magic word: %s", root.Raw)
					}
				})
			}
		}
	}
	t.Run("429 carries Retry-After", func(t *testing.T) {
		for _, tc := range []struct {
			retryAfter time.Duration
			want       string
		}{{0, "1"}, {3 * time.Second, "3"}, {1500 * time.Millisecond, "2"}} {
			_, ts := start(t, Options{RetryAfter: tc.retryAfter})
			resp := post(t, ts, "/v1/chat/completions", openAIReq("SIM_ERROR_429", ""))
			readAll(t, resp)
			if got := resp.Header.Get("Retry-After"); got != tc.want {
				t.Errorf("RetryAfter %v: Retry-After %q, want %q", tc.retryAfter, got, tc.want)
			}
		}
	})
}

func TestWordsMagicWordSetsTheAnswerLength(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			_, ts := start(t, Options{})
			for _, n := range []int{1, 3, 57} {
				root := mustJSON(t, post(t, ts, d.path, d.req("answer in SIM_WORDS_"+strconv.Itoa(n)+" please", "")), 200)
				text := root.Get("choices.0.message.content").Str + root.Get("content.0.text").Str
				if words(text) != n {
					t.Errorf("SIM_WORDS_%d gave %d words: %q", n, words(text), text)
				}
			}
		})
	}
}

func TestCutStreamDropsTheConnectionMidAnswer(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name+"/stream", func(t *testing.T) {
			_, ts := start(t, Options{})
			resp := post(t, ts, d.path, d.req("SIM_CUT_STREAM", `,"stream":true`))
			evs, err := readEvents(resp)
			if err == nil {
				t.Fatalf("stream ended cleanly after %d events", len(evs))
			}
			content := 0
			for _, ev := range evs {
				if ev.data == d.done {
					t.Fatalf("complete stream end seen")
				}
				if ev.name == "content_block_delta" || gjson.Get(ev.data, "choices.0.delta.content").Str != "" {
					content++
				}
			}
			if content < 2 {
				t.Errorf("only %d content events before the cut", content)
			}
		})
		t.Run(d.name+"/json", func(t *testing.T) {
			_, ts := start(t, Options{})
			resp := post(t, ts, d.path, d.req("SIM_CUT_STREAM", ""))
			var buf bytes.Buffer
			if _, err := buf.ReadFrom(resp.Body); err == nil {
				t.Fatalf("body read cleanly: %s", buf.String())
			}
			if buf.Len() == 0 {
				t.Error("nothing sent before the cut")
			}
		})
	}
}

func TestStreamErrorSendsAnErrorEventMidStream(t *testing.T) {
	t.Run("openai", func(t *testing.T) {
		_, ts := start(t, Options{})
		evs := mustEvents(t, post(t, ts, "/v1/chat/completions", openAIReq("SIM_STREAM_ERROR", `,"stream":true`)))
		last := gjson.Parse(evs[len(evs)-1].data)
		if last.Get("error.type").Str != "server_error" || !last.Get("error.message").Exists() || len(evs) < 3 {
			t.Errorf("events %v", evs)
		}
		root := mustJSON(t, post(t, ts, "/v1/chat/completions", openAIReq("SIM_STREAM_ERROR", "")), 500)
		if root.Get("error.type").Str != "server_error" {
			t.Errorf("json answer %s", root.Raw)
		}
	})
	t.Run("anthropic", func(t *testing.T) {
		_, ts := start(t, Options{})
		evs := mustEvents(t, post(t, ts, "/v1/messages", anthropicReq("SIM_STREAM_ERROR", `,"stream":true`)))
		got := names(t, evs)
		want := []string{"message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta", "error"}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("events %v, want %v", got, want)
		}
		if e := evs[len(evs)-1].data; e != `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}` {
			t.Errorf("error event %s", e)
		}
		root := mustJSON(t, post(t, ts, "/v1/messages", anthropicReq("SIM_STREAM_ERROR", "")), 529)
		if root.Get("error.type").Str != "overloaded_error" {
			t.Errorf("json answer %s", root.Raw)
		}
	})
}

func TestStallHoldsTheStreamUntilTheClientLeaves(t *testing.T) {
	for _, d := range dialects {
		for _, stream := range []bool{true, false} {
			name := d.name + "/json"
			if stream {
				name = d.name + "/stream"
			}
			t.Run(name, func(t *testing.T) {
				s := New(Options{})
				returned := make(chan struct{})
				ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					defer close(returned)
					s.ServeHTTP(w, r)
				}))
				defer ts.Close()

				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				extra := ""
				if stream {
					extra = `,"stream":true`
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+d.path, strings.NewReader(d.req("SIM_STALL", extra)))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Anthropic-Version", "2023-06-01")
				// A stalled JSON answer never sends headers, so Do itself waits.
				clientDone := make(chan error, 1)
				go func() {
					resp, err := ts.Client().Do(req)
					if err == nil {
						if stream {
							var first string
							first, err = readFirstEvent(resp)
							if err == nil && first == "" {
								err = errors.New("empty first event")
							}
							clientDone <- err
							<-ctx.Done()
						}
						resp.Body.Close()
						return
					}
					clientDone <- err
				}()
				if stream {
					if err := <-clientDone; err != nil {
						t.Fatalf("first event: %v", err)
					}
				}
				select {
				case <-returned:
					t.Fatal("handler returned while the client waited")
				case <-time.After(50 * time.Millisecond):
				}
				cancel()
				select {
				case <-returned:
				case <-time.After(2 * time.Second):
					t.Fatal("handler still running after the client left")
				}
				if !stream {
					if err := <-clientDone; err == nil {
						t.Error("stalled JSON request got an answer")
					}
				}
			})
		}
	}
}

func readFirstEvent(resp *http.Response) (string, error) {
	var b []byte
	buf := make([]byte, 1)
	for !bytes.HasSuffix(b, []byte("\n\n")) {
		if _, err := resp.Body.Read(buf); err != nil {
			return string(b), err
		}
		b = append(b, buf[0])
	}
	return string(b), nil
}

func TestErrorRatesAreHonoured(t *testing.T) {
	s := New(Options{ErrorRate429: 0.1, ErrorRate500: 0.2})
	const n = 2000
	body := []byte(openAIReq("count me", ""))
	counts := map[int]int{}
	for range n {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body)))
		counts[rec.Code]++
		if rec.Code == 429 && rec.Header().Get("Retry-After") != "1" {
			t.Fatalf("429 without Retry-After: %v", rec.Header())
		}
	}
	// Five standard deviations either side.
	within := func(got int, p float64) bool {
		mean := p * n
		sd := 5 * math.Sqrt(n*p*(1-p))
		return float64(got) > mean-sd && float64(got) < mean+sd
	}
	if !within(counts[429], 0.1) || !within(counts[500], 0.2) || !within(counts[200], 0.7) {
		t.Errorf("counts %v over %d requests, want about 10%% 429 and 20%% 500", counts, n)
	}
	if s.Calls() != n {
		t.Errorf("Calls() = %d", s.Calls())
	}

	s.SetOptions(Options{})
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body)))
	if rec.Code != 200 {
		t.Errorf("after SetOptions without faults: %d", rec.Code)
	}
}

func TestAPIKeyIsRequiredInEachProvidersHeader(t *testing.T) {
	const key = "sk-sim-secret"
	_, ts := start(t, Options{APIKey: key})
	cases := []struct {
		name, path string
		header     http.Header
		status     int
	}{
		{"openai without key", "/v1/chat/completions", nil, 401},
		{"openai wrong key", "/v1/chat/completions", http.Header{"Authorization": {"Bearer nope"}}, 401},
		{"openai key in the anthropic header", "/v1/chat/completions", http.Header{"X-Api-Key": {key}}, 401},
		{"openai right key", "/v1/chat/completions", http.Header{"Authorization": {"Bearer " + key}}, 200},
		{"anthropic without key", "/v1/messages", nil, 401},
		{"anthropic bearer", "/v1/messages", http.Header{"Authorization": {"Bearer " + key}}, 401},
		{"anthropic right key", "/v1/messages", http.Header{"X-Api-Key": {key}}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := openAIReq("hi", "")
			if tc.path == "/v1/messages" {
				body = anthropicReq("hi", "")
			}
			root := mustJSON(t, postCtx(t, t.Context(), ts, tc.path, body, tc.header), tc.status)
			if tc.status != 401 {
				return
			}
			if strings.Contains(root.Raw, key) {
				t.Error("error body leaks the key")
			}
			want := "invalid_request_error" // OpenAI's type for a bad key
			if tc.path == "/v1/messages" {
				want = "authentication_error"
			}
			if got := root.Get("error.type").Str; got != want {
				t.Errorf("error type %q, want %q: %s", got, want, root.Raw)
			}
		})
	}
}

func TestMalformedRequestsGetA400InTheProvidersFormat(t *testing.T) {
	cases := []struct{ name, body, mention string }{
		{"not json", `{"model":`, ""},
		{"not an object", `[1,2]`, ""},
		{"no model", `{"messages":[{"role":"user","content":"x"}],"max_tokens":5}`, "model"},
		{"no messages", `{"model":"m","max_tokens":5}`, "messages"},
		{"empty messages", `{"model":"m","messages":[],"max_tokens":5}`, "messages"},
	}
	for _, d := range dialects {
		for _, tc := range cases {
			t.Run(d.name+"/"+tc.name, func(t *testing.T) {
				_, ts := start(t, Options{})
				root := mustJSON(t, post(t, ts, d.path, tc.body), 400)
				if root.Get("error.type").Str != "invalid_request_error" || !strings.Contains(root.Get("error.message").Str, tc.mention) {
					t.Errorf("body %s", root.Raw)
				}
				if (d.name == "anthropic") != (root.Get("type").Str == "error") {
					t.Errorf("wrong error format for %s: %s", d.name, root.Raw)
				}
			})
		}
	}
}

func TestCallsAndLastRequestRecordChatRequests(t *testing.T) {
	s, ts := start(t, Options{})
	readAll(t, post(t, ts, "/v1/chat/completions", openAIReq("one", "")))
	body := anthropicReq("two", "")
	readAll(t, post(t, ts, "/v1/messages", body))
	resp, err := ts.Client().Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	resp.Body.Close()

	if s.Calls() != 2 {
		t.Errorf("Calls() = %d, want 2 (models listing is not a call)", s.Calls())
	}
	path, h, b := s.LastRequest()
	if path != "/v1/messages" || string(b) != body || h.Get("Anthropic-Version") != "2023-06-01" {
		t.Errorf("LastRequest = %q %v %s", path, h, b)
	}
	b[0] = 'X'
	h.Set("Anthropic-Version", "changed")
	if _, h2, b2 := s.LastRequest(); b2[0] != '{' || h2.Get("Anthropic-Version") != "2023-06-01" {
		t.Error("LastRequest returned shared memory")
	}
	s.ResetCalls()
	if s.Calls() != 0 {
		t.Errorf("after ResetCalls: %d", s.Calls())
	}
}

func TestModelsAreListedInTheCallersFormat(t *testing.T) {
	_, ts := start(t, Options{Models: []string{"gpt-sim", "claude-sim"}})
	get := func(h http.Header) gjson.Result {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+"/v1/models", nil)
		req.Header = h
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return mustJSON(t, resp, 200)
	}
	oa := get(http.Header{})
	if oa.Get("object").Str != "list" || oa.Get("data.#.id").Raw != `["gpt-sim","claude-sim"]` || oa.Get("data.0.object").Str != "model" {
		t.Errorf("openai list %s", oa.Raw)
	}
	an := get(http.Header{"Anthropic-Version": {"2023-06-01"}})
	if an.Get("data.#.id").Raw != `["gpt-sim","claude-sim"]` || an.Get("data.0.type").Str != "model" || !an.Get("has_more").Exists() {
		t.Errorf("anthropic list %s", an.Raw)
	}
}

func TestUnknownRoutesAndMethodsAreRejected(t *testing.T) {
	_, ts := start(t, Options{})
	mustJSON(t, post(t, ts, "/v2/nothing", "{}"), 404)
	resp, err := ts.Client().Get(ts.URL + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	mustJSON(t, resp, 405)
	if resp.Header.Get("Allow") != "POST" {
		t.Errorf("Allow %q", resp.Header.Get("Allow"))
	}
}
