package gemini

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

const studioKey = "AIzaSyTESTKEY0000000000000000000000000000"

func startSim(t *testing.T, o simulated.Options) (*simulated.Server, string) {
	t.Helper()
	s := simulated.New(o)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func newStudio(t *testing.T, base, key string) *Provider {
	t.Helper()
	p, err := New(Config{Name: "gemini", BaseURL: base, APIKey: key, Client: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func chatBody(content string, extra ...string) []byte {
	b := `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":` + string(api.AppendString(nil, content)) + `}]`
	for _, e := range extra {
		b += "," + e
	}
	return []byte(b + "}")
}

func TestAIStudioChatSendsTheKeyHeaderAndTranslatesTheAnswer(t *testing.T) {
	sim, url := startSim(t, simulated.Options{APIKey: studioKey})
	p := newStudio(t, url, studioKey)
	resp, err := p.ChatCompletion(t.Context(), &provider.Request{Body: chatBody("hello gemini SIM_CACHE_READ_3"), Model: "gemini-2.5-flash"})
	if err != nil {
		t.Fatal(err)
	}
	path, h, body := sim.LastRequest()
	if path != "/v1beta/models/gemini-2.5-flash:generateContent" || h.Get("X-Goog-Api-Key") != studioKey || h.Get("Authorization") != "" {
		t.Fatalf("upstream call %s %v", path, h)
	}
	if !gjson.GetBytes(body, "contents.0.parts.0.text").Exists() {
		t.Fatalf("upstream body %s", body)
	}
	var cc api.ChatCompletion
	if err := json.Unmarshal(resp.Body, &cc); err != nil {
		t.Fatal(err)
	}
	if len(cc.Choices) != 1 || !strings.Contains(*cc.Choices[0].Message.Content, "hello gemini") || cc.Choices[0].FinishReason != "stop" {
		t.Fatalf("answer %s", resp.Body)
	}
	if resp.Usage == nil || resp.Usage.CachedTokens != 3 || resp.Usage.CompletionTokens == 0 || resp.Usage.PromptTokens < 3 {
		t.Fatalf("usage %+v", resp.Usage)
	}
}

func TestAIStudioStreamEndsWithFinishAndUsage(t *testing.T) {
	sim, url := startSim(t, simulated.Options{APIKey: studioKey, Words: 12})
	p := newStudio(t, url, studioKey)
	resp, err := p.ChatCompletion(t.Context(), &provider.Request{Body: chatBody("stream me"), Model: "gemini-2.5-flash", Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	s := resp.Stream.(*Stream)
	chunks, err := drain(s)
	if err != io.EOF {
		t.Fatalf("stream ended with %v", err)
	}
	var acc api.Accumulator
	for _, c := range chunks {
		if err := acc.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	cc := acc.Completion()
	if !acc.Complete() || cc.Choices[0].FinishReason != "stop" || len(strings.Fields(*cc.Choices[0].Message.Content)) != 12 {
		t.Fatalf("accumulated %+v", cc)
	}
	if u, ok := s.Usage(); !ok || u.CompletionTokens != 12 {
		t.Fatalf("usage %+v %v", u, ok)
	}
	if path, _, _ := sim.LastRequest(); path != "/v1beta/models/gemini-2.5-flash:streamGenerateContent" {
		t.Fatalf("path %s", path)
	}
}

func TestAStreamCutMidwayIsAnErrorNotAnAnswer(t *testing.T) {
	for _, word := range []string{"SIM_CUT_STREAM", "SIM_STREAM_ERROR"} {
		t.Run(word, func(t *testing.T) {
			_, url := startSim(t, simulated.Options{APIKey: studioKey})
			p := newStudio(t, url, studioKey)
			resp, err := p.ChatCompletion(t.Context(), &provider.Request{Body: chatBody(word), Model: "gemini-2.5-flash", Stream: true})
			if err != nil {
				t.Fatal(err)
			}
			_, err = drain(resp.Stream.(*Stream))
			var e *api.Error
			if !errors.As(err, &e) || e.Status < 500 {
				t.Fatalf("stream ended with %v", err)
			}
		})
	}
}

func TestAWrongKeyIsTheGatewaysAuthFailureAndNeverQuotesTheKey(t *testing.T) {
	_, url := startSim(t, simulated.Options{APIKey: studioKey})
	wrong := "AIzaSyWRONGKEY000000000000000000000000000"
	p := newStudio(t, url, wrong)
	_, err := p.ChatCompletion(t.Context(), &provider.Request{Body: chatBody("hi"), Model: "gemini-2.5-flash"})
	var e *api.Error
	if !errors.As(err, &e) || e.Status != http.StatusBadGateway || e.Code != provider.CodeAuthFailed {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(e.Error(), wrong) {
		t.Fatalf("the key leaks: %v", e)
	}
}

func TestUpstreamErrorsKeepGooglesStatus(t *testing.T) {
	_, url := startSim(t, simulated.Options{APIKey: studioKey})
	p := newStudio(t, url, studioKey)
	for word, want := range map[string]int{"SIM_ERROR_400": 400, "SIM_ERROR_429": 429, "SIM_ERROR_500": 502} {
		_, err := p.ChatCompletion(t.Context(), &provider.Request{Body: chatBody(word), Model: "gemini-2.5-flash"})
		var e *api.Error
		if !errors.As(err, &e) || e.Status != want {
			t.Errorf("%s: got %v, want status %d", word, err, want)
		}
		if want == 429 && e.RetryAfter <= 0 {
			t.Errorf("429 without the RetryInfo delay: %+v", e)
		}
	}
}

func TestToolCallsRoundTrip(t *testing.T) {
	_, url := startSim(t, simulated.Options{APIKey: studioKey})
	p := newStudio(t, url, studioKey)
	tools := `"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]`
	resp, err := p.ChatCompletion(t.Context(), &provider.Request{Body: chatBody("weather in Paris", tools), Model: "gemini-2.5-flash"})
	if err != nil {
		t.Fatal(err)
	}
	var cc api.ChatCompletion
	if err := json.Unmarshal(resp.Body, &cc); err != nil {
		t.Fatal(err)
	}
	m := cc.Choices[0].Message
	if cc.Choices[0].FinishReason != "tool_calls" || len(m.ToolCalls) != 1 || m.ToolCalls[0].Function.Name != "get_weather" ||
		!gjson.Get(m.ToolCalls[0].Function.Arguments, "city").Exists() {
		t.Fatalf("answer %s", resp.Body)
	}
	// The tool's answer goes back as a functionResponse and gets text.
	next := `{"model":"g","messages":[{"role":"user","content":"weather in Paris"},` +
		`{"role":"assistant","tool_calls":[{"id":"` + m.ToolCalls[0].ID + `","type":"function","function":{"name":"get_weather","arguments":` +
		string(api.AppendString(nil, m.ToolCalls[0].Function.Arguments)) + `}}]},` +
		`{"role":"tool","tool_call_id":"` + m.ToolCalls[0].ID + `","content":"sunny"}],` + tools + `}`
	resp, err = p.ChatCompletion(t.Context(), &provider.Request{Body: []byte(next), Model: "gemini-2.5-flash"})
	if err != nil {
		t.Fatal(err)
	}
	if got := gjson.GetBytes(resp.Body, "choices.0.finish_reason").Str; got != "stop" {
		t.Fatalf("after the tool result: %s", resp.Body)
	}
}

func TestSafetyBlockIsContentFilter(t *testing.T) {
	_, url := startSim(t, simulated.Options{})
	p := newStudio(t, url, "")
	resp, err := p.ChatCompletion(t.Context(), &provider.Request{Body: chatBody("SIM_SAFETY"), Model: "gemini-2.5-flash"})
	if err != nil {
		t.Fatal(err)
	}
	if got := gjson.GetBytes(resp.Body, "choices.0.finish_reason").Str; got != "content_filter" {
		t.Fatalf("%s", resp.Body)
	}
}

func TestEmbeddingsThroughAIStudioAndVertex(t *testing.T) {
	sim, url := startSim(t, simulated.Options{APIKey: "vertex-static-token"})
	studio := newStudio(t, url, "vertex-static-token")
	vertex, err := New(Config{Vertex: true, BaseURL: url, Project: "proj", Location: "europe-west4", AccessToken: "vertex-static-token", Client: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, body, path string
		p                *Provider
		n                int
		tokens           int64
		model            string
	}{
		{"studio one string", `{"model":"m","input":"hello world","dimensions":8}`, "/v1beta/models/gemini-embedding-001:embedContent", studio, 1, 3, ""},
		{"studio batch base64", `{"model":"m","input":["a b","c d e f"],"encoding_format":"base64"}`, "/v1beta/models/gemini-embedding-001:batchEmbedContents", studio, 2, 3, ""},
		{"vertex predict, one call an input for gemini-embedding", `{"model":"m","input":["alpha beta","gamma"],"dimensions":4}`,
			"/v1/projects/proj/locations/europe-west4/publishers/google/models/gemini-embedding-001:predict", vertex, 2, 5, ""},
		{"vertex predict, one call for text-embedding", `{"model":"m","input":["alpha beta","gamma"]}`,
			"/v1/projects/proj/locations/europe-west4/publishers/google/models/text-embedding-005:predict", vertex, 2, 5, "text-embedding-005"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !provider.Speaks(tc.p, provider.SurfaceEmbeddings) {
				t.Fatal("does not speak embeddings")
			}
			model := cmpOr(tc.model, "gemini-embedding-001")
			before := sim.Calls()
			resp, err := tc.p.ChatCompletion(t.Context(), &provider.Request{Surface: provider.SurfaceEmbeddings, Body: []byte(tc.body), Model: model})
			if err != nil {
				t.Fatal(err)
			}
			path, h, _ := sim.LastRequest()
			if path != tc.path {
				t.Fatalf("path %s", path)
			}
			perInput := tc.p.vertex && strings.HasPrefix(model, "gemini-embedding")
			if calls := sim.Calls() - before; perInput && calls != int64(tc.n) || !perInput && calls != 1 {
				t.Fatalf("%d upstream calls", calls)
			}
			if tc.p.vertex != (h.Get("Authorization") == "Bearer vertex-static-token") {
				t.Fatalf("credential headers %v", h)
			}
			data := gjson.GetBytes(resp.Body, "data")
			if n := len(data.Array()); n != tc.n || gjson.GetBytes(resp.Body, "usage.prompt_tokens").Int() != tc.tokens ||
				resp.Usage == nil || int64(resp.Usage.PromptTokens) != tc.tokens {
				t.Fatalf("answer %s", resp.Body)
			}
			if d := gjson.GetBytes([]byte(tc.body), "dimensions"); d.Exists() && int64(len(data.Get("0.embedding").Array())) != d.Int() {
				t.Fatalf("dimensions not honoured: %s", resp.Body)
			}
			if strings.Contains(tc.body, "base64") && data.Get("0.embedding").Type != gjson.String {
				t.Fatalf("not base64: %s", resp.Body)
			}
		})
	}
}

// writeServiceAccount writes a service-account key file whose token_uri is
// tokenURL and returns its path and the public key.
func writeServiceAccount(t *testing.T, tokenURL string) (string, *rsa.PublicKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "proj", "private_key_id": "kid1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "gateway@proj.iam.gserviceaccount.com", "client_id": "1", "token_uri": tokenURL,
	})
	path := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(path, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, &key.PublicKey
}

// Not parallel: it sets GOOGLE_APPLICATION_CREDENTIALS.
func TestVertexFetchesATokenThroughApplicationDefaultCredentialsAndSendsIt(t *testing.T) {
	sim, url := startSim(t, simulated.Options{APIKey: "only-issued-tokens-pass"})
	path, pub := writeServiceAccount(t, url+"/oauth2/token")
	o := simulated.Options{APIKey: "only-issued-tokens-pass", GoogleTokenKey: pub}
	sim.SetOptions(o)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", path)
	p, err := New(Config{Vertex: true, BaseURL: url, Project: "proj", Location: "us-central1"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		resp, err := p.ChatCompletion(t.Context(), &provider.Request{Body: chatBody("hi vertex"), Model: "gemini-2.5-pro"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(gjson.GetBytes(resp.Body, "choices.0.message.content").Str, "hi vertex") {
			t.Fatalf("%s", resp.Body)
		}
	}
	reqPath, h, _ := sim.LastRequest()
	if reqPath != "/v1/projects/proj/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent" {
		t.Fatalf("path %s", reqPath)
	}
	if !strings.HasPrefix(h.Get("Authorization"), "Bearer ya29.sim-1-") || h.Get("X-Goog-Api-Key") != "" {
		t.Fatalf("credential headers %v", h)
	}
	if n := sim.TokenRequests(); n != 1 {
		t.Fatalf("%d token fetches for two calls, want 1 (the token is reused)", n)
	}
}

func TestVertexWithATokenTheEndpointRefusesIsAnAuthFailure(t *testing.T) {
	sim, url := startSim(t, simulated.Options{APIKey: "x"})
	path, _ := writeServiceAccount(t, url+"/oauth2/token")
	_, other := writeServiceAccount(t, url+"/oauth2/token") // the endpoint trusts another key
	sim.SetOptions(simulated.Options{APIKey: "x", GoogleTokenKey: other})
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", path)
	p, err := New(Config{Vertex: true, BaseURL: url, Project: "proj", Location: "us-central1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.ChatCompletion(t.Context(), &provider.Request{Body: chatBody("hi"), Model: "gemini-2.5-pro"})
	var e *api.Error
	if !errors.As(err, &e) || e.Status != http.StatusBadGateway || e.Code != provider.CodeAuthFailed {
		t.Fatalf("got %v", err)
	}
	if sim.TokenRequests() != 0 || sim.Calls() != 0 {
		t.Fatalf("a token was issued (%d) or the model called (%d)", sim.TokenRequests(), sim.Calls())
	}
}

func TestVertexWithoutCredentialsFailsAtStart(t *testing.T) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "missing.json"))
	if _, err := New(Config{Vertex: true, Project: "p", Location: "us-central1"}); err == nil {
		t.Fatal("no error without credentials")
	}
	if _, err := New(Config{Vertex: true, AccessToken: "t"}); err == nil {
		t.Fatal("no error without project and location")
	}
}

func TestNGreaterThanOneIsOneChoiceACandidate(t *testing.T) {
	_, url := startSim(t, simulated.Options{})
	p := newStudio(t, url, "")
	resp, err := p.ChatCompletion(t.Context(), &provider.Request{Body: chatBody("three ways", `"n":3`), Model: "gemini-2.5-flash"})
	if err != nil {
		t.Fatal(err)
	}
	choices := gjson.GetBytes(resp.Body, "choices").Array()
	if len(choices) != 3 || choices[2].Get("index").Int() != 2 ||
		choices[0].Get("message.content").Str == choices[1].Get("message.content").Str {
		t.Fatalf("%s", resp.Body)
	}
	if _, err := p.ChatCompletion(t.Context(), &provider.Request{Body: chatBody("x", `"n":3`), Model: "gemini-2.5-flash", Stream: true}); err == nil {
		t.Fatal("n > 1 on a stream was accepted")
	}
}
