package simulated

import (
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/tidwall/gjson"
)

func TestAzureChecksPathAPIVersionDeploymentAndKey(t *testing.T) {
	_, ts := start(t, Options{APIKey: "azure-key", Models: []string{"dep"}})
	key := http.Header{"Api-Key": {"azure-key"}}
	chatBody := `{"messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name, path, body string
		header           http.Header
		status           int
		code             string
	}{
		{"deployment path", "/openai/deployments/dep/chat/completions?api-version=2024-10-21", chatBody, key, 200, ""},
		{"bearer token instead of api-key", "/openai/deployments/dep/chat/completions?api-version=2024-10-21", chatBody,
			http.Header{"Authorization": {"Bearer azure-key"}}, 200, ""},
		{"missing api-version", "/openai/deployments/dep/chat/completions", chatBody, key, 404, "404"},
		{"unknown api-version", "/openai/deployments/dep/chat/completions?api-version=2099-01-01", chatBody, key, 400, "BadRequest"},
		{"unknown deployment", "/openai/deployments/other/chat/completions?api-version=2024-10-21", chatBody, key, 404, "DeploymentNotFound"},
		{"wrong key", "/openai/deployments/dep/chat/completions?api-version=2024-10-21", chatBody, http.Header{"Api-Key": {"nope"}}, 401, "401"},
		{"no key", "/openai/deployments/dep/chat/completions?api-version=2024-10-21", chatBody, nil, 401, "401"},
		{"unknown operation", "/openai/deployments/dep/images/generations?api-version=2024-10-21", chatBody, key, 404, "404"},
		{"v1 endpoint, deployment in the body", "/openai/v1/chat/completions", `{"model":"dep","messages":[{"role":"user","content":"hi"}]}`, key, 200, ""},
		{"v1 endpoint, preview", "/openai/v1/chat/completions?api-version=preview", `{"model":"dep","messages":[{"role":"user","content":"hi"}]}`, key, 200, ""},
		{"v1 endpoint, dated version", "/openai/v1/chat/completions?api-version=2024-10-21", `{"model":"dep","messages":[{"role":"user","content":"hi"}]}`, key, 400, "BadRequest"},
		{"v1 endpoint, unknown deployment", "/openai/v1/chat/completions", `{"model":"x","messages":[{"role":"user","content":"hi"}]}`, key, 404, "DeploymentNotFound"},
		{"stream_options before 2024-09-01", "/openai/deployments/dep/chat/completions?api-version=2024-06-01",
			`{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, key, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := postCtx(t, t.Context(), ts, tt.path, tt.body, tt.header)
			body := readAll(t, resp)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if got := gjson.Get(body, "error.code").String(); tt.status != 200 && got != tt.code {
				t.Fatalf("code %q, want %q: %s", got, tt.code, body)
			}
		})
	}
}

func TestAzureRateLimitSendsRetryAfterMs(t *testing.T) {
	_, ts := start(t, Options{Models: []string{"dep"}})
	resp := post(t, ts, "/openai/deployments/dep/chat/completions?api-version=2024-10-21", `{"messages":[{"role":"user","content":"SIM_ERROR_429"}]}`)
	body := readAll(t, resp)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" || resp.Header.Get("Retry-After-Ms") != "1000" ||
		gjson.Get(body, "error.code").String() != "429" {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
	}
}

func TestAzureMethodOtherThanPostIs405(t *testing.T) {
	_, ts := start(t, Options{Models: []string{"dep"}})
	resp, err := ts.Client().Get(ts.URL + "/openai/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
}

func TestAzureEmbeddingsAreDeterministicUnitVectors(t *testing.T) {
	_, ts := start(t, Options{Models: []string{"emb"}})
	path := "/openai/deployments/emb/embeddings?api-version=2024-10-21"
	a := readAll(t, post(t, ts, path, `{"input":["same text","other text"],"dimensions":16}`))
	b := readAll(t, post(t, ts, path, `{"input":"same text","dimensions":16}`))
	first, again := gjson.Get(a, "data.0.embedding").Raw, gjson.Get(b, "data.0.embedding").Raw
	if first != again || first == gjson.Get(a, "data.1.embedding").Raw {
		t.Fatalf("vectors %s / %s", a, b)
	}
	var norm float64
	for _, v := range gjson.Get(a, "data.0.embedding").Array() {
		norm += v.Float() * v.Float()
	}
	if norm < 0.999 || norm > 1.001 || len(gjson.Get(a, "data.0.embedding").Array()) != 16 {
		t.Fatalf("norm %f of %s", norm, first)
	}
	c := readAll(t, post(t, ts, path, `{"input":"same text","dimensions":16,"encoding_format":"base64"}`))
	raw, err := base64.StdEncoding.DecodeString(gjson.Get(c, "data.0.embedding").String())
	if err != nil || len(raw) != 16*4 {
		t.Fatalf("base64 embedding %s: %v", c, err)
	}
	if resp := post(t, ts, path, `{"input":[]}`); resp.StatusCode != 400 {
		t.Fatalf("empty input: %d", resp.StatusCode)
	}
}

func TestAzureResponsesNeedAnInput(t *testing.T) {
	_, ts := start(t, Options{Models: []string{"dep"}})
	resp := post(t, ts, "/openai/v1/responses", `{"model":"dep"}`)
	body := readAll(t, resp)
	if resp.StatusCode != 400 || gjson.Get(body, "error.param").String() != "input" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	resp = post(t, ts, "/openai/v1/responses", `{"model":"dep","input":[{"role":"user","content":[{"type":"input_text","text":"from parts"}]}],"max_output_tokens":4}`)
	body = readAll(t, resp)
	if resp.StatusCode != 200 || gjson.Get(body, "status").String() != "incomplete" ||
		gjson.Get(body, "output.0.content.0.text").String() != "Simulated answer to: from" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}
