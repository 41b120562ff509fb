package simulated

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"
)

func TestEmbeddingsAreDeterministicPerInputInAnyBatch(t *testing.T) {
	_, ts := start(t, Options{})
	batch := mustJSON(t, post(t, ts, "/v1/embeddings", `{"model":"text-embedding-3-small","input":["alpha","beta"],"dimensions":8}`), 200)
	alone := mustJSON(t, post(t, ts, "/v1/embeddings", `{"model":"text-embedding-3-small","input":"beta","dimensions":8}`), 200)
	if got, want := alone.Get("data.0.embedding").Raw, batch.Get("data.1.embedding").Raw; got != want {
		t.Errorf("beta alone %s, beta in a batch %s", got, want)
	}
	if batch.Get("data.0.embedding").Raw == batch.Get("data.1.embedding").Raw {
		t.Error("two inputs got the same vector")
	}
	if batch.Get("object").Str != "list" || batch.Get("model").Str != "text-embedding-3-small" ||
		batch.Get("data.1.index").Int() != 1 || batch.Get("data.1.object").Str != "embedding" {
		t.Errorf("answer %s", batch.Raw)
	}
	if batch.Get("usage.prompt_tokens").Int() != 3 || batch.Get("usage.total_tokens").Int() != 3 {
		t.Errorf("usage %s, want 2+1 tokens (a token per 4 bytes, rounded up)", batch.Get("usage").Raw)
	}
	var norm float64
	batch.Get("data.0.embedding").ForEach(func(_, v gjson.Result) bool { norm += v.Float() * v.Float(); return true })
	if math.Abs(norm-1) > 1e-5 {
		t.Errorf("|v|^2 = %v, want a unit vector", norm)
	}
}

func TestEmbeddingsBase64IsTheFloatsBytes(t *testing.T) {
	_, ts := start(t, Options{})
	floats := mustJSON(t, post(t, ts, "/v1/embeddings", `{"model":"m","input":[[1,2,3]],"dimensions":16}`), 200).Get("data.0.embedding").Array()
	b64 := mustJSON(t, post(t, ts, "/v1/embeddings", `{"model":"m","input":[1,2,3],"dimensions":16,"encoding_format":"base64"}`), 200).Get("data.0.embedding").Str
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != 4*len(floats) || len(floats) != 16 {
		t.Fatalf("base64 of %d bytes (%v) for %d floats", len(raw), err, len(floats))
	}
	for j, f := range floats {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:])); got != float32(f.Float()) {
			t.Fatalf("component %d: base64 %v, float %v", j, got, f.Float())
		}
	}
}

func TestEmbeddingsCountCallsAndInputs(t *testing.T) {
	s, ts := start(t, Options{})
	mustJSON(t, post(t, ts, "/v1/embeddings", `{"model":"m","input":["a","b","c"],"dimensions":4}`), 200)
	mustJSON(t, post(t, ts, "/v1/embeddings", `{"model":"m","input":"d","dimensions":4}`), 200)
	if s.EmbeddingCalls() != 2 || s.EmbeddingInputs() != 4 || s.Calls() != 0 {
		t.Errorf("calls %d inputs %d chat calls %d, want 2, 4, 0", s.EmbeddingCalls(), s.EmbeddingInputs(), s.Calls())
	}
	s.ResetCalls()
	if s.EmbeddingCalls() != 0 || s.EmbeddingInputs() != 0 {
		t.Error("ResetCalls left the embedding counts")
	}
}

func TestEmbeddingsRejectBadRequestsAsOpenAIDoes(t *testing.T) {
	_, ts := start(t, Options{})
	for _, body := range []string{
		`{"input":"a"}`,
		`{"model":"m"}`,
		`{"model":"m","input":[]}`,
		`{"model":"m","input":["a",""]}`,
		`{"model":"m","input":"a","encoding_format":"int8"}`,
		`{"model":"m","input":"a","dimensions":0}`,
		`{"model":"m","input":"SIM_ERROR_400"}`,
	} {
		if root := mustJSON(t, post(t, ts, "/v1/embeddings", body), 400); root.Get("error.type").Str != "invalid_request_error" {
			t.Errorf("%s: %s", body, root.Raw)
		}
	}
	mustJSON(t, post(t, ts, "/v1/embeddings", `{"model":"m","input":"SIM_ERROR_500"}`), 500)
}

func TestOfficialOpenAISDKReadsTheEmbeddings(t *testing.T) {
	_, ts := start(t, Options{})
	client := openai.NewClient(option.WithBaseURL(ts.URL+"/v1/"), option.WithAPIKey("x"), option.WithHTTPClient(ts.Client()), option.WithMaxRetries(0))
	for _, enc := range []openai.EmbeddingNewParamsEncodingFormat{openai.EmbeddingNewParamsEncodingFormatFloat, openai.EmbeddingNewParamsEncodingFormatBase64} {
		res, err := client.Embeddings.New(t.Context(), openai.EmbeddingNewParams{
			Model:          openai.EmbeddingModelTextEmbedding3Small,
			Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"one", "two"}},
			Dimensions:     openai.Int(32),
			EncodingFormat: enc,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Data) != 2 || res.Data[1].Index != 1 || res.Usage.PromptTokens != 2 {
			t.Fatalf("%s: %+v", enc, res)
		}
		if enc == openai.EmbeddingNewParamsEncodingFormatFloat && len(res.Data[0].Embedding) != 32 {
			t.Errorf("float: %d components, want 32", len(res.Data[0].Embedding))
		}
	}
}
