package bedrock

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

const claude = "anthropic.claude-3-5-sonnet-20241022-v2:0"

// simBedrock starts the simulated provider and a Provider signing with
// the credentials it accepts.
func simBedrock(t *testing.T, cfg Config) (*Provider, *simulated.Server) {
	t.Helper()
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.AccessKeyID == "" && cfg.Credentials == nil {
		cfg.AccessKeyID, cfg.SecretAccessKey = simulated.BedrockAccessKeyID, simulated.BedrockSecretAccessKey
	}
	return simBedrockChain(t, cfg)
}

// simBedrockChain is simBedrock with cfg as given: without keys or a
// region, the SDK's default chain supplies them.
func simBedrockChain(t *testing.T, cfg Config) (*Provider, *simulated.Server) {
	t.Helper()
	sim := simulated.New(simulated.Options{})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cfg.BaseURL = srv.URL
	p, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if tr, ok := p.client.Transport.(*provider.Transport); ok {
			tr.CloseIdleConnections()
		}
	})
	return p, sim
}

func chat(t *testing.T, p *Provider, model, body string, stream bool) (*provider.Response, error) {
	t.Helper()
	return p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(body), Model: model, Stream: stream})
}

func TestConverseAnswerIsSignedTranslatedAndPriced(t *testing.T) {
	p, sim := simBedrock(t, Config{})
	hdr := http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"Authorization": {"Bearer client-gateway-key"}}
	resp, err := p.ChatCompletion(context.Background(), &provider.Request{Model: claude, Header: hdr,
		Body: []byte(`{"model":"x","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello there SIM_CACHE_READ_40 SIM_CACHE_WRITE_7"}],"max_tokens":50}`)})
	if err != nil {
		t.Fatalf("ChatCompletion: %v", err)
	}
	path, h, body := sim.LastRequest()
	if path != "/model/"+claude+"/converse" {
		t.Errorf("path %q", path)
	}
	if a := h.Get("Authorization"); !strings.HasPrefix(a, "AWS4-HMAC-SHA256 Credential="+simulated.BedrockAccessKeyID+"/") ||
		!strings.Contains(a, "/us-east-1/bedrock/aws4_request") {
		t.Errorf("Authorization %q is not a SigV4 header for bedrock in us-east-1", a)
	}
	if h.Get("Traceparent") == "" {
		t.Error("trace context was not propagated")
	}
	if gjson.GetBytes(body, "system.0.text").Str != "Be brief." || gjson.GetBytes(body, "inferenceConfig.maxTokens").Int() != 50 {
		t.Errorf("upstream body not translated: %s", body)
	}
	var cc api.ChatCompletion
	if err := json.Unmarshal(resp.Body, &cc); err != nil {
		t.Fatalf("answer is not a chat.completion: %v\n%s", err, resp.Body)
	}
	if cc.Model != claude || len(cc.Choices) != 1 || !strings.HasPrefix(cc.ID, "chatcmpl-") {
		t.Errorf("answer %s", resp.Body)
	}
	if !strings.HasPrefix(gjson.GetBytes(resp.Body, "choices.0.message.content").Str, "Simulated answer to: Hello there") {
		t.Errorf("content %s", resp.Body)
	}
	u := resp.Usage
	if u == nil || u.CacheReadTokens != 40 || u.CacheWrite5mTokens != 7 || u.PromptTokens <= 0 || u.CompletionTokens <= 0 {
		t.Fatalf("usage by kind %+v", u)
	}
	if got, want := gjson.GetBytes(resp.Body, "usage.prompt_tokens").Int(), int64(u.PromptTokens+47); got != want {
		t.Errorf("prompt_tokens = %d, want input+cache read+cache write = %d", got, want)
	}
	if gjson.GetBytes(resp.Body, "usage.prompt_tokens_details.cached_tokens").Int() != 40 {
		t.Errorf("cached_tokens: %s", resp.Body)
	}
}

func TestConverseStreamDecodesEventStreamIntoChunks(t *testing.T) {
	p, sim := simBedrock(t, Config{})
	resp, err := chat(t, p, claude, `{"messages":[{"role":"user","content":"Stream this SIM_WORDS_9 SIM_CACHE_READ_5"}],"stream":true}`, true)
	if err != nil {
		t.Fatal(err)
	}
	if path, h, _ := sim.LastRequest(); path != "/model/"+claude+"/converse-stream" || h.Get("Accept") != "application/vnd.amazon.eventstream" {
		t.Errorf("path %q accept %q", path, h.Get("Accept"))
	}
	chunks, err := drain(resp.Stream.(*Stream))
	if err != io.EOF {
		t.Fatalf("stream ended with %v", err)
	}
	var text strings.Builder
	var finish string
	for _, c := range chunks {
		text.WriteString(gjson.GetBytes(c, "choices.0.delta.content").Str)
		if f := gjson.GetBytes(c, "choices.0.finish_reason"); f.Type == gjson.String {
			finish = f.Str
		}
	}
	if got := strings.Fields(text.String()); len(got) != 9 || got[0] != "Simulated" {
		t.Errorf("text %q, want 9 words", text.String())
	}
	if finish != "stop" {
		t.Errorf("finish_reason %q", finish)
	}
	last := chunks[len(chunks)-1]
	if gjson.GetBytes(last, "usage.completion_tokens").Int() != 9 || gjson.GetBytes(last, "usage.prompt_tokens_details.cached_tokens").Int() != 5 {
		t.Errorf("last chunk is not the usage chunk: %s", last)
	}
	if u, ok := resp.Stream.(provider.UsageReporter).Usage(); !ok || u.CacheReadTokens != 5 || u.CompletionTokens != 9 {
		t.Errorf("Usage() = %+v, %v", u, ok)
	}
}

const weatherTools = `"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]`

func TestToolCallsRoundTrip(t *testing.T) {
	p, _ := simBedrock(t, Config{})
	for _, stream := range []bool{false, true} {
		resp, err := chat(t, p, claude, `{"messages":[{"role":"user","content":"Weather in Paris?"}],`+weatherTools+`,"tool_choice":"required"}`, stream)
		if err != nil {
			t.Fatal(err)
		}
		var name, args, finish, id string
		if stream {
			chunks, err := drain(resp.Stream.(*Stream))
			if err != io.EOF {
				t.Fatal(err)
			}
			for _, c := range chunks {
				tc := gjson.GetBytes(c, "choices.0.delta.tool_calls.0")
				name += tc.Get("function.name").Str
				args += tc.Get("function.arguments").Str
				id += tc.Get("id").Str
				if f := gjson.GetBytes(c, "choices.0.finish_reason"); f.Type == gjson.String {
					finish = f.Str
				}
			}
		} else {
			tc := gjson.GetBytes(resp.Body, "choices.0.message.tool_calls.0")
			name, args, id = tc.Get("function.name").Str, tc.Get("function.arguments").Str, tc.Get("id").Str
			finish = gjson.GetBytes(resp.Body, "choices.0.finish_reason").Str
		}
		if name != "get_weather" || !gjson.Valid(args) || !gjson.Get(args, "city").Exists() || finish != "tool_calls" || id == "" {
			t.Errorf("stream=%v: tool call %q(%s) id %q finish %q", stream, name, args, id, finish)
		}

		// The call and its result go back: Converse wants toolConfig then.
		follow := `{"messages":[{"role":"user","content":"Weather in Paris?"},
			{"role":"assistant","content":null,"tool_calls":[{"id":"` + id + `","type":"function","function":{"name":"get_weather","arguments":` + jsonString(args) + `}}]},
			{"role":"tool","tool_call_id":"` + id + `","content":"Sunny, 21C"}],` + weatherTools + `}`
		resp, err = chat(t, p, claude, follow, false)
		if err != nil {
			t.Fatalf("tool result turn: %v", err)
		}
		if fr := gjson.GetBytes(resp.Body, "choices.0.finish_reason").Str; fr != "stop" {
			t.Errorf("after the tool result finish_reason = %q, want a text answer", fr)
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestInferenceProfileARNIsEscapedInThePathAndSigned(t *testing.T) {
	p, sim := simBedrock(t, Config{})
	arn := "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
	resp, err := chat(t, p, arn, `{"messages":[{"role":"user","content":"Hi"}]}`, false)
	if err != nil {
		t.Fatalf("a profile ARN was not accepted (signature over the escaped path?): %v", err)
	}
	if m := gjson.GetBytes(resp.Body, "model").Str; m != arn {
		t.Errorf("model %q", m)
	}
	if path, _, _ := sim.LastRequest(); path != "/model/"+arn+"/converse" {
		t.Errorf("path %q", path)
	}
	if got := p.modelURL(arn, "/converse"); !strings.HasSuffix(got,
		"/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse") {
		t.Errorf("model URL %s: the id is not one escaped path segment", got)
	}
}

func TestWrongSecretIsAnUpstreamAuthFailureWithoutTheSecret(t *testing.T) {
	const secret = "this-is-the-wrong-secret-key-0123456789"
	p, _ := simBedrock(t, Config{AccessKeyID: simulated.BedrockAccessKeyID, SecretAccessKey: secret})
	_, err := chat(t, p, claude, `{"messages":[{"role":"user","content":"Hi"}]}`, false)
	var e *api.Error
	if !errors.As(err, &e) || e.Status != http.StatusBadGateway || e.Code != provider.CodeAuthFailed {
		t.Fatalf("err = %v, want a 502 %s", err, provider.CodeAuthFailed)
	}
	if !strings.Contains(e.Message, "InvalidSignatureException") || strings.Contains(e.Error(), secret) {
		t.Errorf("message %q", e.Message)
	}
}

func TestUnknownAccessKeyIsAnUpstreamAuthFailure(t *testing.T) {
	p, _ := simBedrock(t, Config{AccessKeyID: "AKIDSOMEONEELSE", SecretAccessKey: simulated.BedrockSecretAccessKey})
	_, err := chat(t, p, claude, `{"messages":[{"role":"user","content":"Hi"}]}`, false)
	var e *api.Error
	if !errors.As(err, &e) || e.Code != provider.CodeAuthFailed || !strings.Contains(e.Message, "UnrecognizedClientException") {
		t.Fatalf("err = %v", err)
	}
}

func TestSessionTokenIsSentAndSigned(t *testing.T) {
	p, sim := simBedrock(t, Config{Credentials: credentials.NewStaticCredentialsProvider(
		simulated.BedrockAccessKeyID, simulated.BedrockSecretAccessKey, "session-token-from-sts")})
	if _, err := chat(t, p, claude, `{"messages":[{"role":"user","content":"Hi"}]}`, false); err != nil {
		t.Fatal(err)
	}
	_, h, _ := sim.LastRequest()
	if h.Get("X-Amz-Security-Token") != "session-token-from-sts" || !strings.Contains(h.Get("Authorization"), "x-amz-security-token") {
		t.Errorf("session token not sent and signed: %v", h)
	}
}

// isolateAWSConfig points the SDK's default chain at nothing of the
// machine's: no shared files, no instance metadata (which would be a call
// off this machine).
func isolateAWSConfig(t *testing.T) string {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
	} {
		t.Setenv(k, v)
	}
	return dir
}

func TestDefaultChainTakesKeysAndRegionFromTheEnvironment(t *testing.T) {
	isolateAWSConfig(t)
	t.Setenv("AWS_ACCESS_KEY_ID", simulated.BedrockAccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", simulated.BedrockSecretAccessKey)
	t.Setenv("AWS_REGION", "eu-west-3")
	p, sim := simBedrockChain(t, Config{})
	if p.region != "eu-west-3" {
		t.Errorf("region %q, want AWS_REGION's", p.region)
	}
	if _, err := chat(t, p, claude, `{"messages":[{"role":"user","content":"Hi"}]}`, false); err != nil {
		t.Fatal(err)
	}
	if _, h, _ := sim.LastRequest(); !strings.Contains(h.Get("Authorization"), "/eu-west-3/bedrock/") {
		t.Errorf("Authorization %q", h.Get("Authorization"))
	}
}

func TestDefaultChainReadsANamedProfileFromTheSharedFiles(t *testing.T) {
	dir := isolateAWSConfig(t)
	creds := "[team]\naws_access_key_id = " + simulated.BedrockAccessKeyID + "\naws_secret_access_key = " + simulated.BedrockSecretAccessKey + "\n"
	if err := os.WriteFile(filepath.Join(dir, "credentials"), []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte("[profile team]\nregion = ap-southeast-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_PROFILE", "team")
	p, _ := simBedrockChain(t, Config{})
	if p.region != "ap-southeast-2" {
		t.Errorf("region %q, want the profile's", p.region)
	}
	if _, err := chat(t, p, claude, `{"messages":[{"role":"user","content":"Hi"}]}`, false); err != nil {
		t.Fatal(err)
	}
}

func TestNoCredentialsIsAnAuthFailureNamingTheProvider(t *testing.T) {
	isolateAWSConfig(t)
	p, sim := simBedrockChain(t, Config{Name: "aws", Region: "us-east-1"})
	_, err := chat(t, p, claude, `{"messages":[{"role":"user","content":"Hi"}]}`, false)
	var e *api.Error
	if !errors.As(err, &e) || e.Code != provider.CodeAuthFailed || !strings.Contains(e.Message, "provider aws has no AWS credentials") {
		t.Fatalf("err = %v", err)
	}
	if sim.Calls() != 0 {
		t.Error("an unsigned request was sent")
	}
}

func TestNoRegionFailsAtStartUp(t *testing.T) {
	isolateAWSConfig(t)
	_, err := New(context.Background(), Config{AccessKeyID: "a", SecretAccessKey: "b"})
	if err == nil || !strings.Contains(err.Error(), "no region") {
		t.Fatalf("err = %v", err)
	}
}

func TestMidStreamFailuresAreErrorsNotEndings(t *testing.T) {
	p, _ := simBedrock(t, Config{})
	for magic, code := range map[string]string{"SIM_STREAM_ERROR": "upstream_stream_error", "SIM_CUT_STREAM": "upstream_stream_truncated"} {
		resp, err := chat(t, p, claude, `{"messages":[{"role":"user","content":"`+magic+` SIM_WORDS_30"}]}`, true)
		if err != nil {
			t.Fatal(err)
		}
		chunks, err := drain(resp.Stream.(*Stream))
		var e *api.Error
		if !errors.As(err, &e) || e.Code != code || e.Status != http.StatusBadGateway {
			t.Errorf("%s: stream ended with %v after %d chunks, want %s", magic, err, len(chunks), code)
		}
	}
}

func TestSimulatedErrorsArriveInOpenAIShape(t *testing.T) {
	p, _ := simBedrock(t, Config{})
	for magic, status := range map[string]int{"SIM_ERROR_400": 400, "SIM_ERROR_429": 429, "SIM_ERROR_500": 502} {
		_, err := chat(t, p, claude, `{"messages":[{"role":"user","content":"`+magic+`"}]}`, false)
		var e *api.Error
		if !errors.As(err, &e) || e.Status != status {
			t.Errorf("%s: %v, want status %d", magic, err, status)
		}
	}
}

func TestEmbeddingsTitanAndCohere(t *testing.T) {
	p, sim := simBedrock(t, Config{})
	if !p.Speaks(provider.SurfaceEmbeddings) || p.Speaks(provider.SurfaceResponses) {
		t.Fatal("Speaks: want embeddings only")
	}
	cases := []struct {
		name, model, body string
		dims, calls       int
		wantBody          string // a field of the last upstream body that must be there
	}{
		{"titan v2 float", "amazon.titan-embed-text-v2:0", `{"input":["one","two"],"model":"m"}`, 1024, 2, "normalize"},
		{"titan v2 dimensions", "amazon.titan-embed-text-v2:0", `{"input":"one","dimensions":256}`, 256, 1, "dimensions"},
		{"cohere v3 batch", "cohere.embed-english-v3", `{"input":["a","b","c"]}`, 1024, 1, "input_type"},
		{"cohere v4 dimensions", "us.cohere.embed-v4:0", `{"input":["a"],"dimensions":512}`, 512, 1, "output_dimension"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim.ResetCalls()
			resp, err := p.ChatCompletion(context.Background(), &provider.Request{Surface: provider.SurfaceEmbeddings, Model: c.model, Body: []byte(c.body)})
			if err != nil {
				t.Fatal(err)
			}
			if int(sim.Calls()) != c.calls {
				t.Errorf("%d upstream calls, want %d", sim.Calls(), c.calls)
			}
			path, _, up := sim.LastRequest()
			if !strings.HasSuffix(path, "/invoke") || !gjson.GetBytes(up, c.wantBody).Exists() {
				t.Errorf("upstream %s %s", path, up)
			}
			data := gjson.GetBytes(resp.Body, "data")
			n := gjson.Get(c.body, "input.#").Int()
			if n == 0 {
				n = 1
			}
			if data.Get("#").Int() != n || gjson.GetBytes(resp.Body, "object").Str != "list" || gjson.GetBytes(resp.Body, "model").Str != c.model {
				t.Fatalf("answer %.300s", resp.Body)
			}
			for i, d := range data.Array() {
				if d.Get("index").Int() != int64(i) || d.Get("object").Str != "embedding" || d.Get("embedding.#").Int() != int64(c.dims) {
					t.Errorf("item %d: index %d, %d numbers", i, d.Get("index").Int(), d.Get("embedding.#").Int())
				}
			}
			if gjson.GetBytes(resp.Body, "usage.prompt_tokens").Int() <= 0 || resp.Usage == nil || resp.Usage.PromptTokens <= 0 {
				t.Errorf("usage %s", gjson.GetBytes(resp.Body, "usage").Raw)
			}
		})
	}
}

func TestEmbeddingsBase64IsLittleEndianFloat32OfTheFloats(t *testing.T) {
	p, _ := simBedrock(t, Config{})
	get := func(format string) []byte {
		resp, err := p.ChatCompletion(context.Background(), &provider.Request{Surface: provider.SurfaceEmbeddings,
			Model: "amazon.titan-embed-text-v2:0", Body: []byte(`{"input":"same text","dimensions":256,"encoding_format":"` + format + `"}`)})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Body
	}
	floats := gjson.GetBytes(get("float"), "data.0.embedding").Array()
	raw, err := base64.StdEncoding.DecodeString(gjson.GetBytes(get("base64"), "data.0.embedding").Str)
	if err != nil || len(raw) != 4*len(floats) {
		t.Fatalf("base64 decodes to %d bytes (%v), want %d", len(raw), err, 4*len(floats))
	}
	for i, f := range floats {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); got != float32(f.Num) {
			t.Fatalf("number %d: %v in base64, %v as float", i, got, f.Num)
		}
	}
}

func TestEmbeddingsRefusesWhatBedrockCannotDo(t *testing.T) {
	p, sim := simBedrock(t, Config{})
	for name, c := range map[string]struct{ model, body, param string }{
		"chat model":          {claude, `{"input":"x"}`, "model"},
		"token arrays":        {"amazon.titan-embed-text-v2:0", `{"input":[1,2,3]}`, "input"},
		"titan v2 odd size":   {"amazon.titan-embed-text-v2:0", `{"input":"x","dimensions":300}`, "dimensions"},
		"cohere v3 size":      {"cohere.embed-english-v3", `{"input":"x","dimensions":256}`, "dimensions"},
		"bad encoding format": {"cohere.embed-english-v3", `{"input":"x","encoding_format":"int8"}`, "encoding_format"},
		"empty text":          {"amazon.titan-embed-text-v1", `{"input":[""]}`, "input"},
	} {
		sim.ResetCalls()
		_, err := p.ChatCompletion(context.Background(), &provider.Request{Surface: provider.SurfaceEmbeddings, Model: c.model, Body: []byte(c.body)})
		var e *api.Error
		if !errors.As(err, &e) || e.Status != 400 || e.Param != c.param {
			t.Errorf("%s: %v, want a 400 on %s", name, err, c.param)
		}
		if sim.Calls() != 0 {
			t.Errorf("%s: sent upstream", name)
		}
	}
}

// TestErrorsMapToStatuses checks every exception Bedrock documents for
// Converse and InvokeModel, and the authentication ones AWS sends before
// an operation runs, as Bedrock sends them over HTTP.
func TestErrorsMapToStatuses(t *testing.T) {
	cases := []struct {
		exception string
		status    int // Bedrock's
		want      int // the client's
		typ, code string
	}{
		{"ThrottlingException", 429, 429, api.TypeRateLimit, "rate_limit_exceeded"},
		{"ServiceQuotaExceededException", 400, 429, api.TypeRateLimit, "quota_exceeded"},
		{"ValidationException", 400, 400, api.TypeInvalidRequest, ""},
		{"ConflictException", 400, 400, api.TypeInvalidRequest, ""},
		{"ResourceNotFoundException", 404, 404, api.TypeInvalidRequest, "model_not_found"},
		{"AccessDeniedException", 403, 502, api.TypeUpstream, provider.CodeAuthFailed},
		{"UnrecognizedClientException", 403, 502, api.TypeUpstream, provider.CodeAuthFailed},
		{"InvalidSignatureException", 403, 502, api.TypeUpstream, provider.CodeAuthFailed},
		{"IncompleteSignatureException", 403, 502, api.TypeUpstream, provider.CodeAuthFailed},
		{"ExpiredTokenException", 403, 502, api.TypeUpstream, provider.CodeAuthFailed},
		{"MissingAuthenticationTokenException", 403, 502, api.TypeUpstream, provider.CodeAuthFailed},
		{"ModelNotReadyException", 429, 503, api.TypeOverloaded, "model_not_ready"},
		{"ServiceUnavailableException", 503, 503, api.TypeOverloaded, "upstream_unavailable"},
		{"InternalServerException", 500, 502, api.TypeUpstream, "upstream_error"},
		{"ModelErrorException", 424, 502, api.TypeUpstream, "upstream_model_error"},
		{"ModelStreamErrorException", 424, 502, api.TypeUpstream, "upstream_stream_error"},
		{"ModelTimeoutException", 408, 504, api.TypeTimeout, "upstream_timeout"},
		{"SomethingNewException", 418, 418, api.TypeInvalidRequest, ""},
		{"SomethingNewFailure", 500, 502, api.TypeUpstream, "upstream_error"},
	}
	for _, c := range cases {
		t.Run(c.exception, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Amzn-Errortype", c.exception+":http://internal.amazon.com/coral/com.amazon.bedrock/")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(c.status)
				io.WriteString(w, `{"message":"what Bedrock said, signed by AKIAABCDEFGHIJKLMNOP"}`)
			}))
			defer srv.Close()
			p, err := New(context.Background(), Config{Region: "us-east-1", BaseURL: srv.URL, AccessKeyID: "AKIDTEST", SecretAccessKey: "secret", Client: srv.Client()})
			if err != nil {
				t.Fatal(err)
			}
			_, err = chat(t, p, claude, `{"messages":[{"role":"user","content":"Hi"}]}`, false)
			var e *api.Error
			if !errors.As(err, &e) {
				t.Fatalf("err %v", err)
			}
			if e.Status != c.want || e.Type != c.typ || e.Code != c.code {
				t.Errorf("got %d %s %q, want %d %s %q (%s)", e.Status, e.Type, e.Code, c.want, c.typ, c.code, e.Message)
			}
			if !strings.Contains(e.Message, "what Bedrock said") || strings.Contains(e.Message, "AKIAABCDEFGHIJKLMNOP") {
				t.Errorf("message %q: want Bedrock's, with the key scrubbed", e.Message)
			}
		})
	}
}

func TestStreamExceptionsMapToStatuses(t *testing.T) {
	cases := []struct {
		exception string
		status    int
		code      string
	}{
		{"throttlingException", 429, "rate_limit_exceeded"},
		{"validationException", 400, ""},
		{"serviceUnavailableException", 503, "upstream_unavailable"},
		{"internalServerException", 502, "upstream_error"},
		{"modelStreamErrorException", 502, "upstream_stream_error"},
		{"someNewException", 502, "upstream_stream_error"},
	}
	for _, c := range cases {
		var in bytes.Buffer
		writeEvents(t, &in, []testEvent{{Type: "messageStart", Payload: json.RawMessage(`{"role":"assistant"}`)},
			{Exception: c.exception, Payload: json.RawMessage(`{"message":"stream broke"}`)}})
		_, err := drain(NewStream(&in, claude, "r", 1))
		var e *api.Error
		if !errors.As(err, &e) || e.Status != c.status || e.Code != c.code || !strings.Contains(e.Message, "stream broke") {
			t.Errorf("%s: %v", c.exception, err)
		}
	}
}

func TestStopReasonsMapToFinishReasons(t *testing.T) {
	for stop, want := range map[string]string{
		"end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls", "max_tokens": "length",
		"model_context_window_exceeded": "length", "guardrail_intervened": "content_filter",
		"content_filtered": "content_filter", "malformed_model_output": "stop", "malformed_tool_use": "stop",
	} {
		out, err := TranslateResponse([]byte(`{"output":{"message":{"role":"assistant","content":[{"text":"x"}]}},"stopReason":"`+stop+`","usage":{"inputTokens":1,"outputTokens":1}}`), claude, "r", 1)
		if err != nil {
			t.Fatal(err)
		}
		var in bytes.Buffer
		writeEvents(t, &in, []testEvent{{Type: "messageStart", Payload: json.RawMessage(`{"role":"assistant"}`)},
			{Type: "messageStop", Payload: json.RawMessage(`{"stopReason":"` + stop + `"}`)}})
		chunks, _ := drain(NewStream(&in, claude, "r", 1))
		if got := gjson.GetBytes(out, "choices.0.finish_reason").Str; got != want {
			t.Errorf("Converse %s -> %q, want %q", stop, got, want)
		}
		if got := gjson.GetBytes(chunks[len(chunks)-1], "choices.0.finish_reason").Str; got != want {
			t.Errorf("ConverseStream %s -> %q, want %q", stop, got, want)
		}
	}
}

func TestOversizedEventIsRefusedBeforeItIsRead(t *testing.T) {
	var in bytes.Buffer
	binary.Write(&in, binary.BigEndian, uint32(maxEventBytes+1))
	in.WriteString("rest of a frame that is never read")
	_, err := drain(NewStream(&in, claude, "r", 1))
	var e *api.Error
	if !errors.As(err, &e) || e.Code != "upstream_invalid_response" {
		t.Fatalf("err %v", err)
	}
}

func TestCorruptFrameIsAnInvalidResponse(t *testing.T) {
	var in bytes.Buffer
	writeEvents(t, &in, []testEvent{{Type: "messageStart", Payload: json.RawMessage(`{"role":"assistant"}`)}})
	b := in.Bytes()
	b[len(b)-6] ^= 0xff // inside the payload: the message CRC no longer matches
	_, err := drain(NewStream(bytes.NewReader(b), claude, "r", 1))
	var e *api.Error
	if !errors.As(err, &e) || e.Code != "upstream_invalid_response" {
		t.Fatalf("err %v", err)
	}
}

func TestContextEndStopsAStalledStream(t *testing.T) {
	p, _ := simBedrock(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := p.ChatCompletion(ctx, &provider.Request{Model: claude, Stream: true,
		Body: []byte(`{"messages":[{"role":"user","content":"SIM_STALL"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	s := resp.Stream.(*Stream)
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = s.Next()
	s.Close()
	if err == nil || err == io.EOF {
		t.Fatalf("a stalled stream ended with %v after its context ended", err)
	}
}
