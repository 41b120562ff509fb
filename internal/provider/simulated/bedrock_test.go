package simulated

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"
)

// The official AWS SDK's Bedrock Runtime client, pointed at the simulated
// endpoint, must not notice it is not talking to AWS: it signs, frames and
// parses everything itself.

func awsClient(t *testing.T, secret string) (*bedrockruntime.Client, *Server) {
	t.Helper()
	s := New(Options{})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	t.Cleanup(srv.Client().CloseIdleConnections)
	return bedrockruntime.New(bedrockruntime.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), HTTPClient: srv.Client(), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(BedrockAccessKeyID, secret, ""),
	}), s
}

func userText(s string) []types.Message {
	return []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: s}}}}
}

const sdkModel = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"

func TestAWSSDKConverse(t *testing.T) {
	c, _ := awsClient(t, BedrockSecretAccessKey)
	out, err := c.Converse(t.Context(), &bedrockruntime.ConverseInput{ModelId: aws.String(sdkModel),
		Messages: userText("sdk converse SIM_WORDS_7 SIM_CACHE_READ_11"), InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(5)}})
	if err != nil {
		t.Fatal(err)
	}
	msg := out.Output.(*types.ConverseOutputMemberMessage).Value
	text := msg.Content[0].(*types.ContentBlockMemberText).Value
	if len(strings.Fields(text)) != 5 || out.StopReason != types.StopReasonMaxTokens {
		t.Errorf("answer %q, stop %s: want 5 words cut by maxTokens", text, out.StopReason)
	}
	if *out.Usage.OutputTokens != 5 || aws.ToInt32(out.Usage.CacheReadInputTokens) != 11 || *out.Usage.InputTokens < 1 {
		t.Errorf("usage %+v", out.Usage)
	}
}

func TestAWSSDKConverseStream(t *testing.T) {
	c, _ := awsClient(t, BedrockSecretAccessKey)
	out, err := c.ConverseStream(t.Context(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String(sdkModel),
		Messages: userText("sdk stream SIM_WORDS_10 SIM_CACHE_WRITE_3")})
	if err != nil {
		t.Fatal(err)
	}
	st := out.GetStream()
	defer st.Close()
	var text strings.Builder
	var stop types.StopReason
	var usage *types.TokenUsage
	for ev := range st.Events() {
		switch e := ev.(type) {
		case *types.ConverseStreamOutputMemberContentBlockDelta:
			text.WriteString(e.Value.Delta.(*types.ContentBlockDeltaMemberText).Value)
		case *types.ConverseStreamOutputMemberMessageStop:
			stop = e.Value.StopReason
		case *types.ConverseStreamOutputMemberMetadata:
			usage = e.Value.Usage
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if len(strings.Fields(text.String())) != 10 || stop != types.StopReasonEndTurn || usage == nil ||
		*usage.OutputTokens != 10 || aws.ToInt32(usage.CacheWriteInputTokens) != 3 {
		t.Errorf("text %q stop %s usage %+v", text.String(), stop, usage)
	}
}

func TestAWSSDKConverseToolUse(t *testing.T) {
	c, _ := awsClient(t, BedrockSecretAccessKey)
	schema := document.NewLazyDocument(map[string]any{"type": "object",
		"properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"}})
	out, err := c.Converse(t.Context(), &bedrockruntime.ConverseInput{ModelId: aws.String(sdkModel), Messages: userText("Weather in Oslo?"),
		ToolConfig: &types.ToolConfiguration{Tools: []types.Tool{&types.ToolMemberToolSpec{Value: types.ToolSpecification{
			Name: aws.String("get_weather"), InputSchema: &types.ToolInputSchemaMemberJson{Value: schema}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	tu, ok := out.Output.(*types.ConverseOutputMemberMessage).Value.Content[0].(*types.ContentBlockMemberToolUse)
	if !ok || aws.ToString(tu.Value.Name) != "get_weather" || out.StopReason != types.StopReasonToolUse {
		t.Fatalf("content %+v stop %s", out.Output, out.StopReason)
	}
	var input map[string]any
	if err := tu.Value.Input.UnmarshalSmithyDocument(&input); err != nil || input["city"] == nil {
		t.Errorf("input %v (%v)", input, err)
	}
}

func TestAWSSDKSeesBedrockExceptions(t *testing.T) {
	c, _ := awsClient(t, BedrockSecretAccessKey)
	_, err := c.Converse(t.Context(), &bedrockruntime.ConverseInput{ModelId: aws.String(sdkModel), Messages: userText("SIM_ERROR_429")})
	var throttled *types.ThrottlingException
	if !errors.As(err, &throttled) {
		t.Errorf("SIM_ERROR_429: %v, want a ThrottlingException", err)
	}
	_, err = c.Converse(t.Context(), &bedrockruntime.ConverseInput{ModelId: aws.String(sdkModel), Messages: userText("SIM_ERROR_400")})
	var invalid *types.ValidationException
	if !errors.As(err, &invalid) {
		t.Errorf("SIM_ERROR_400: %v, want a ValidationException", err)
	}
	out, err := c.ConverseStream(t.Context(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String(sdkModel),
		Messages: userText("SIM_STREAM_ERROR SIM_WORDS_20")})
	if err != nil {
		t.Fatal(err)
	}
	st := out.GetStream()
	for range st.Events() {
	}
	st.Close()
	var streamErr *types.ModelStreamErrorException
	if !errors.As(st.Err(), &streamErr) {
		t.Errorf("SIM_STREAM_ERROR: %v, want a ModelStreamErrorException event", st.Err())
	}
}

func TestAWSSDKWithTheWrongSecretIsRefused(t *testing.T) {
	c, s := awsClient(t, "wrong-secret")
	_, err := c.Converse(t.Context(), &bedrockruntime.ConverseInput{ModelId: aws.String(sdkModel), Messages: userText("hi")})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidSignatureException" {
		t.Fatalf("err = %v", err)
	}
	if s.Calls() != 1 {
		t.Errorf("calls %d", s.Calls())
	}
}

func TestAWSSDKInvokeModelEmbeddings(t *testing.T) {
	c, _ := awsClient(t, BedrockSecretAccessKey)
	out, err := c.InvokeModel(t.Context(), &bedrockruntime.InvokeModelInput{ModelId: aws.String("amazon.titan-embed-text-v2:0"),
		ContentType: aws.String("application/json"), Body: []byte(`{"inputText":"hello","dimensions":256}`)})
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(out.Body, []byte(",")); n != 256 { // 255 between the numbers, one before inputTextTokenCount
		t.Errorf("%d commas in %.200s", n, out.Body)
	}
}

// signed returns a request for body signed now+skew with the simulated
// credentials.
func signed(t *testing.T, url, body string, skew time.Duration) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, url+"/model/"+sdkModel+"/converse", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: BedrockAccessKeyID, SecretAccessKey: BedrockSecretAccessKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), "bedrock", "eu-west-1", time.Now().Add(skew)); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSigV4VerificationRejectsTamperingAndStaleSignatures(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()
	const body = `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`
	send := func(r *http.Request) (int, string) {
		resp, err := srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, strings.SplitN(resp.Header.Get("X-Amzn-Errortype"), ":", 2)[0]
	}
	if code, _ := send(signed(t, srv.URL, body, 0)); code != 200 {
		t.Fatalf("a good signature got %d", code)
	}
	for name, r := range map[string]*http.Request{
		"body changed after signing": func() *http.Request {
			r := signed(t, srv.URL, body, 0)
			tampered := strings.Replace(body, "hi", "ho", 1)
			r.Body, r.ContentLength = http.NoBody, int64(len(tampered))
			r.Body = httpBody(tampered)
			return r
		}(),
		"signed header changed": func() *http.Request {
			r := signed(t, srv.URL, body, 0)
			r.Header.Set("Content-Type", "text/plain")
			return r
		}(),
		"ten minutes old": signed(t, srv.URL, body, -10*time.Minute),
		"no signature": func() *http.Request {
			r := signed(t, srv.URL, body, 0)
			r.Header.Del("Authorization")
			return r
		}(),
	} {
		code, exception := send(r)
		if code != http.StatusForbidden || !strings.HasSuffix(exception, "Exception") {
			t.Errorf("%s: %d %q, want 403 and an exception", name, code, exception)
		}
	}
}

type stringBody struct{ *strings.Reader }

func (stringBody) Close() error { return nil }

func httpBody(s string) stringBody { return stringBody{strings.NewReader(s)} }
