package embeddings

import (
	"errors"
	"net/http"
	"testing"

	"github.com/edge-agent/edge-agent/internal/api"
)

const upstream3 = `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-1e-3]},{"object":"embedding","index":2,"embedding":[3.25,0]},{"object":"embedding","index":1,"embedding":[0.1,0.2]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":9,"total_tokens":9}}`

func TestReadAnswerPlacesElementsByIndex(t *testing.T) {
	a, err := ReadAnswer([]byte(upstream3), 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"object":"embedding","index":0,"embedding":[0.5,-1e-3]}`,
		`{"object":"embedding","index":1,"embedding":[0.1,0.2]}`,
		`{"object":"embedding","index":2,"embedding":[3.25,0]}`,
	}
	for i, w := range want {
		if string(a.Elems[i]) != w {
			t.Errorf("element %d = %s, want %s", i, a.Elems[i], w)
		}
	}
	if a.Model != "text-embedding-3-small" || a.PromptTokens != 9 || a.TotalTokens != 9 {
		t.Errorf("model %q usage %d/%d", a.Model, a.PromptTokens, a.TotalTokens)
	}
}

func TestReadAnswerRefusesWhatCannotBeTakenApart(t *testing.T) {
	tests := []struct{ name, body string }{
		{"not JSON", `{"data":`},
		{"no data", `{"object":"list"}`},
		{"too few", `{"data":[{"index":0,"embedding":[1]}]}`},
		{"too many", `{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[1]},{"index":1,"embedding":[1]}]}`},
		{"index twice", `{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[1]}]}`},
		{"index out of range", `{"data":[{"index":0,"embedding":[1]},{"index":2,"embedding":[1]}]}`},
		{"no index", `{"data":[{"embedding":[1]},{"index":1,"embedding":[1]}]}`},
		{"no embedding", `{"data":[{"index":0},{"index":1,"embedding":[1]}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadAnswer([]byte(tt.body), 2)
			var e *api.Error
			if !errors.As(err, &e) || e.Status != http.StatusBadGateway || e.Code != "upstream_invalid_response" {
				t.Errorf("err = %v, want a 502 upstream_invalid_response", err)
			}
		})
	}
}

func TestAppendAnswerMergesStoredAndFreshInTheClientsOrder(t *testing.T) {
	up, err := ReadAnswer([]byte(`{"object":"list","data":[{"object":"embedding","index":0,"embedding":"AAAAPw=="}],"model":"e","usage":{"prompt_tokens":2,"total_tokens":2}}`), 1)
	if err != nil {
		t.Fatal(err)
	}
	stored := []byte(`{"object":"embedding","index":7,"embedding":"AACAPw=="}`)
	got := AppendAnswer(nil, up, [][]byte{stored, up.Elems[0], stored}, "e", 2, 2)
	want := `{"object":"list","data":[{"object":"embedding","index":0,"embedding":"AACAPw=="},{"object":"embedding","index":1,"embedding":"AAAAPw=="},{"object":"embedding","index":2,"embedding":"AACAPw=="}],"model":"e","usage":{"prompt_tokens":2,"total_tokens":2}}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	got = AppendAnswer(nil, nil, [][]byte{stored}, "e", 0, 0)
	want = `{"object":"list","data":[{"object":"embedding","index":0,"embedding":"AACAPw=="}],"model":"e","usage":{"prompt_tokens":0,"total_tokens":0}}`
	if string(got) != want {
		t.Errorf("every input a hit: got %s\nwant %s", got, want)
	}
	got = AppendAnswer(nil, up, [][]byte{up.Elems[0]}, "e", 5, 5)
	want = `{"object":"list","data":[{"object":"embedding","index":0,"embedding":"AAAAPw=="}],"model":"e","usage":{"prompt_tokens":5,"total_tokens":5}}`
	if string(got) != want {
		t.Errorf("usage of two calls: got %s\nwant %s", got, want)
	}
}

func TestSharesAddUpToTheCallsTokens(t *testing.T) {
	req, _ := Parse([]byte(`{"model":"m","input":["aaaaaaaa","bb","cccc"]}`), api.DefaultLimits)
	for _, total := range []int{0, 1, 7, 100, 1001} {
		s := req.Shares(total, []int{0, 1, 2})
		sum := 0
		for _, v := range s {
			sum += v
		}
		if sum != total {
			t.Errorf("total %d: shares %v add up to %d", total, s, sum)
		}
		if total >= 100 && !(s[0] > s[2] && s[2] > s[1]) {
			t.Errorf("total %d: shares %v are not in proportion to the inputs' lengths", total, s)
		}
	}
}
