package embeddings

import (
	"testing"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cache"
)

func keysOf(t *testing.T, body string) []cache.Key {
	t.Helper()
	req, err := Parse([]byte(body), api.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	k, err := req.Keys(nil, "ns", "openai/text-embedding-3-small", "text-embedding-3-small")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestAnInputHasTheSameKeyInAnyBatch(t *testing.T) {
	a := keysOf(t, `{"model":"m","input":["x","y"]}`)
	b := keysOf(t, `{"model":"other-alias","input":["z","y","x"],"user":"someone"}`)
	if a[0] != b[2] || a[1] != b[1] {
		t.Errorf("the same text in another batch (other client model name, user) has another key")
	}
	if a[0] == a[1] || b[0] == a[0] {
		t.Errorf("different texts share a key")
	}
	single := keysOf(t, `{"model":"m","input":"x","encoding_format":"float"}`)
	if single[0] != a[0] {
		t.Errorf("a lone string, encoding float named, keys differently from the same string in a batch")
	}
}

func TestWhatChangesTheVectorChangesTheKey(t *testing.T) {
	base := keysOf(t, `{"model":"m","input":"x"}`)[0]
	for _, body := range []string{
		`{"model":"m","input":"x","encoding_format":"base64"}`,
		`{"model":"m","input":"x","dimensions":256}`,
		`{"model":"m","input":"x","some_new_field":true}`,
		`{"model":"m","input":["x "]}`,
		`{"model":"m","input":[120]}`,
	} {
		if keysOf(t, body)[0] == base {
			t.Errorf("%s has the key of {\"input\":\"x\"}", body)
		}
	}
	req, _ := Parse([]byte(`{"model":"m","input":"x"}`), api.DefaultLimits)
	other, _ := req.Keys(nil, "another-namespace", "openai/text-embedding-3-small", "text-embedding-3-small")
	if other[0] == base {
		t.Errorf("another namespace shares the key")
	}
	other, _ = req.Keys(nil, "ns", "azure/text-embedding-3-small", "text-embedding-3-small")
	if other[0] == base {
		t.Errorf("another route shares the key")
	}
}
