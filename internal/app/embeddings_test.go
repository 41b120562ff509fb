package app_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

// POST /v1/embeddings as the official OpenAI SDK sees it, cached per input:
// the simulated provider counts the calls and the inputs it was sent, so a
// test sees exactly what went upstream.

func embedParams(dims int64, format openai.EmbeddingNewParamsEncodingFormat, inputs ...string) openai.EmbeddingNewParams {
	p := openai.EmbeddingNewParams{Model: "text-embedding-3-small", Dimensions: openai.Int(dims),
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: inputs}}
	if format != "" {
		p.EncodingFormat = format
	}
	return p
}

func TestEmbeddingsFloatThroughTheGatewayAndAHitOnRepeat(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	client := sdkClient(g)
	params := embedParams(8, "", "the cat", "the dog", "the bird")

	var raw *http.Response
	res, err := client.Embeddings.New(t.Context(), params, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Data) != 3 || res.Usage.PromptTokens == 0 {
		t.Fatalf("answer %s", res.RawJSON())
	}
	for i, d := range res.Data {
		if d.Index != int64(i) || len(d.Embedding) != 8 {
			t.Fatalf("data[%d]: index %d, %d dimensions", i, d.Index, len(d.Embedding))
		}
	}
	if got := raw.Header.Get("X-Cache-Status") + " " + raw.Header.Get("X-Cache-Misses"); got != "MISS 3" {
		t.Fatalf("first call: X-Cache-Status and X-Cache-Misses %q", got)
	}
	if s.EmbeddingCalls() != 1 || s.EmbeddingInputs() != 3 {
		t.Fatalf("upstream saw %d calls, %d inputs", s.EmbeddingCalls(), s.EmbeddingInputs())
	}

	again, err := client.Embeddings.New(t.Context(), params, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if got := raw.Header.Get("X-Cache-Status") + " " + raw.Header.Get("X-Cache-Hits"); got != "HIT 3" {
		t.Fatalf("repeat: X-Cache-Status and X-Cache-Hits %q", got)
	}
	if s.EmbeddingCalls() != 1 {
		t.Fatalf("a hit went upstream: %d calls", s.EmbeddingCalls())
	}
	if a, b := gjson.Get(again.RawJSON(), "data").Raw, gjson.Get(res.RawJSON(), "data").Raw; a != b {
		t.Fatalf("the hit's vectors differ from the miss's:\n%s\n%s", a, b)
	}
	// Nothing was sent upstream for the hit: nothing charged.
	if again.Usage.PromptTokens != 0 || gjson.Get(again.RawJSON(), "metadata.cached").String() != "true" {
		t.Fatalf("hit usage %d, metadata %s", again.Usage.PromptTokens, gjson.Get(again.RawJSON(), "metadata").Raw)
	}
	f := scrapeFamilies(t, g.URL)
	if v := f.value("llm_edge_requests_total", "endpoint=embeddings", "provider=openai", "model=text-embedding-3-small", "status=2xx"); v != 2 {
		t.Errorf("embeddings requests = %v, want 2", v)
	}
	if v := f.value("llm_edge_cache_misses_total", "provider=openai", "model=text-embedding-3-small"); v != 1 {
		t.Errorf("cache misses = %v, want 1", v)
	}
	if v := f.value("llm_edge_cache_hits_total", "tier=l1", "provider=openai", "model=text-embedding-3-small"); v != 1 {
		t.Errorf("L1 hits = %v, want 1; %v", v, f["llm_edge_cache_hits_total"])
	}
}

// A batch whose inputs were partly seen sends upstream only the others, in
// one call, in the client's order, and its answer is, vector for vector,
// the bytes the upstream alone returns for the whole batch, in float and in
// base64.
func TestEmbeddingsBatchWithPartialHitsSendsOnlyTheMissesAndIsByteIdentical(t *testing.T) {
	for _, format := range []openai.EmbeddingNewParamsEncodingFormat{openai.EmbeddingNewParamsEncodingFormatFloat, openai.EmbeddingNewParamsEncodingFormatBase64} {
		t.Run(string(format), func(t *testing.T) {
			s := startSim(t, simulated.Options{})
			g := startGateway(t, simConfig(s))
			client := sdkClient(g)
			direct := openai.NewClient(option.WithBaseURL(s.URL+"/v1/"), option.WithAPIKey("demo"), option.WithMaxRetries(0))

			if _, err := client.Embeddings.New(t.Context(), embedParams(16, format, "alpha", "gamma")); err != nil {
				t.Fatal(err)
			}
			batch := []string{"alpha", "beta", "gamma", "delta", "alpha"}
			var raw *http.Response
			res, err := client.Embeddings.New(t.Context(), embedParams(16, format, batch...), option.WithResponseInto(&raw))
			if err != nil {
				t.Fatal(err)
			}
			if s.EmbeddingCalls() != 2 || s.EmbeddingInputs() != 4 {
				t.Fatalf("upstream saw %d calls, %d inputs; want the warm-up's 2 and the misses beta, delta", s.EmbeddingCalls(), s.EmbeddingInputs())
			}
			if _, _, body := s.LastRequest(); gjson.GetBytes(body, "input").Raw != `["beta","delta"]` {
				t.Fatalf("upstream was sent %s", body)
			}
			if got := raw.Header.Get("X-Cache-Status") + " " + raw.Header.Get("X-Cache-Hits") + "/" + raw.Header.Get("X-Cache-Misses"); got != "PARTIAL 3/2" {
				t.Fatalf("X-Cache-Status Hits/Misses %q", got)
			}
			meta := gjson.Get(res.RawJSON(), "metadata")
			if meta.Get("cache_hits").String() != "3" || meta.Get("cache_misses").String() != "2" {
				t.Fatalf("metadata %s", meta.Raw)
			}

			alone, err := direct.Embeddings.New(t.Context(), embedParams(16, format, batch...))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Data) != len(batch) {
				t.Fatalf("%d vectors for %d inputs", len(res.Data), len(batch))
			}
			for i := range batch {
				if got, want := res.Data[i].RawJSON(), alone.Data[i].RawJSON(); got != want {
					t.Fatalf("data[%d] (%s):\n gateway  %s\n upstream %s", i, batch[i], got, want)
				}
			}
			if got, want := gjson.Get(res.RawJSON(), "model").Raw, gjson.Get(alone.RawJSON(), "model").Raw; got != want {
				t.Fatalf("model %s, upstream %s", got, want)
			}
			// Charged: the tokens of the misses, as the upstream counted them.
			misses, err := direct.Embeddings.New(t.Context(), embedParams(16, format, "beta", "delta"))
			if err != nil {
				t.Fatal(err)
			}
			if res.Usage.PromptTokens != misses.Usage.PromptTokens || res.Usage.PromptTokens == 0 {
				t.Fatalf("usage %d prompt tokens, the misses alone %d", res.Usage.PromptTokens, misses.Usage.PromptTokens)
			}
		})
	}
}

func TestEmbeddingsBadInputGetsOpenAIsEnvelope(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	client := sdkClient(g)
	tests := []struct {
		name, body, param, code string
	}{
		{"empty input", `{"model":"text-embedding-3-small","input":[]}`, "input", ""},
		{"empty string", `{"model":"text-embedding-3-small","input":[""]}`, "input[0]", ""},
		{"unknown encoding", `{"model":"text-embedding-3-small","input":"x","encoding_format":"int8"}`, "encoding_format", ""},
		{"dimensions not a number", `{"model":"text-embedding-3-small","input":"x","dimensions":"8"}`, "dimensions", ""},
		{"no model", `{"input":"x"}`, "model", ""},
		{"model without embeddings", `{"model":"claude-sonnet-4-5","input":"x"}`, "model", "model_not_supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out openai.CreateEmbeddingResponse
			err := client.Post(t.Context(), "embeddings", []byte(tt.body), &out)
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("want an API error, got %v", err)
			}
			if apiErr.StatusCode != http.StatusBadRequest || apiErr.Type != "invalid_request_error" || apiErr.Param != tt.param ||
				(tt.code != "" && apiErr.Code != tt.code) {
				t.Fatalf("status %d type %q param %q code %q: %s", apiErr.StatusCode, apiErr.Type, apiErr.Param, apiErr.Code, apiErr.RawJSON())
			}
		})
	}
	if s.EmbeddingCalls() != 0 {
		t.Fatalf("bad input went upstream: %d calls", s.EmbeddingCalls())
	}
}

// POST /v1/completions (legacy), passed through to the OpenAI-compatible
// upstream, JSON and stream, cached like chat.
func TestCompletionsThroughTheGatewayJSONStreamAndHits(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	client := sdkClient(g)
	params := openai.CompletionNewParams{Model: "gpt-3.5-turbo-instruct", MaxTokens: openai.Int(30),
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("tell me about caches")}}

	var raw *http.Response
	c, err := client.Completions.New(t.Context(), params, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Choices) != 1 || !strings.HasPrefix(c.Choices[0].Text, "Simulated answer to: tell me about caches") ||
		c.Choices[0].FinishReason != "stop" || c.Object != "text_completion" || c.Usage.CompletionTokens == 0 {
		t.Fatalf("completion %s", c.RawJSON())
	}
	if path, _, _ := s.LastRequest(); path != "/v1/completions" || raw.Header.Get("X-Cache-Status") != "MISS" {
		t.Fatalf("upstream path %q, X-Cache-Status %q", path, raw.Header.Get("X-Cache-Status"))
	}
	calls := s.Calls()

	hit, err := client.Completions.New(t.Context(), params, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if raw.Header.Get("X-Cache-Status") != "HIT" || s.Calls() != calls || hit.Choices[0].Text != c.Choices[0].Text {
		t.Fatalf("repeat: X-Cache-Status %q, upstream calls %d -> %d, text %q", raw.Header.Get("X-Cache-Status"), calls, s.Calls(), hit.Choices[0].Text)
	}

	// The stream of another prompt: a miss, then its replay from the cache.
	sp := params
	sp.Prompt = openai.CompletionNewParamsPromptUnion{OfString: openai.String("stream me a story")}
	sp.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	read := func() (string, string, int64) {
		t.Helper()
		var text strings.Builder
		var finish string
		var usage int64
		stream := client.Completions.NewStreaming(t.Context(), sp, option.WithResponseInto(&raw))
		for stream.Next() {
			ch := stream.Current()
			if ch.Object != "text_completion" {
				t.Fatalf("chunk %s", ch.RawJSON())
			}
			for _, c := range ch.Choices {
				text.WriteString(c.Text)
				if c.FinishReason != "" {
					finish = string(c.FinishReason)
				}
			}
			if ch.Usage.CompletionTokens > 0 {
				usage = ch.Usage.CompletionTokens
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		return text.String(), finish + " " + raw.Header.Get("X-Cache-Status"), usage
	}
	text, how, usage := read()
	if !strings.HasPrefix(text, "Simulated answer to: stream me a story") || how != "stop MISS" || usage == 0 {
		t.Fatalf("stream: %q, %s, usage %d", text, how, usage)
	}
	// The SDK stops reading at [DONE]; the gateway stores the answer and
	// records the request when its handler returns, just after. A replay
	// sent before that joins the call as a coalesced follower: wait, so
	// that it is an L1 hit.
	completions := func() float64 {
		return scrapeFamilies(t, g.URL).value("llm_edge_requests_total", "endpoint=completions", "provider=openai", "model=gpt-3.5-turbo-instruct", "status=2xx")
	}
	waitFor(t, "the stream recorded", func() bool { return completions() == 3 })
	calls = s.Calls()
	text2, how, usage2 := read()
	if text2 != text || how != "stop HIT" || usage2 != usage || s.Calls() != calls {
		t.Fatalf("replay: %q (%s, usage %d, upstream calls %d -> %d), first %q", text2, how, usage2, calls, s.Calls(), text)
	}
	waitFor(t, "the replay recorded", func() bool { return completions() == 4 })
	f := scrapeFamilies(t, g.URL)
	if v := f.value("llm_edge_requests_total", "endpoint=completions", "provider=openai", "model=gpt-3.5-turbo-instruct", "status=2xx"); v != 4 {
		t.Errorf("completions requests = %v, want 4", v)
	}
	if v := f.value("llm_edge_cache_misses_total", "provider=openai", "model=gpt-3.5-turbo-instruct"); v != 2 {
		t.Errorf("cache misses = %v, want 2", v)
	}
	if v := f.value("llm_edge_cache_hits_total", "tier=l1", "provider=openai", "model=gpt-3.5-turbo-instruct"); v != 2 {
		t.Errorf("L1 hits = %v, want 2; %v", v, f["llm_edge_cache_hits_total"])
	}
}

func TestCompletionsForAModelWithoutTheAPIIsA400(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	client := sdkClient(g)
	_, err := client.Completions.New(t.Context(), openai.CompletionNewParams{Model: "claude-sonnet-4-5",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("hi")}})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Type != "invalid_request_error" {
		t.Fatalf("want OpenAI's 400 envelope, got %v", err)
	}
	if s.Calls() != 0 {
		t.Fatalf("the request went upstream: %d calls", s.Calls())
	}
	_, err = client.Completions.New(t.Context(), openai.CompletionNewParams{Model: "gpt-3.5-turbo-instruct",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("hi")}, Temperature: openai.Float(7)})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Param != "temperature" {
		t.Fatalf("temperature 7: want a 400 naming it, got %v", err)
	}
}
