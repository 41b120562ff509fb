package embeddings

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

// Answer is an upstream's embeddings answer, read in place.
type Answer struct {
	Body []byte
	// Elems are the data elements in index order, each the bytes of its
	// object as the upstream wrote them (pointing into Body).
	Elems [][]byte
	// dataStart and dataEnd are the byte span of the data array in Body.
	dataStart, dataEnd int
	Model              string
	PromptTokens       int
	TotalTokens        int
}

func invalid(format string, args ...any) *api.Error {
	return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_invalid_response",
		Message: fmt.Sprintf(format, args...)}
}

// ReadAnswer validates body as the answer to a request of n inputs: a list
// whose data holds one embedding (an array of numbers, or a base64 string)
// for each index 0..n-1. Anything else is a 502: an answer that cannot be
// taken apart is never stored.
func ReadAnswer(body []byte, n int) (*Answer, error) {
	js := api.View(body)
	if !gjson.Valid(js) {
		return nil, invalid("provider returned an embeddings answer that is not JSON")
	}
	root := gjson.Parse(js)
	if !root.IsObject() {
		return nil, invalid("provider returned an embeddings answer that is not a JSON object")
	}
	a := &Answer{Body: body, Elems: make([][]byte, n)}
	var data gjson.Result
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "data":
			data = v
		case "model":
			a.Model = strings.Clone(v.String())
		case "usage":
			a.PromptTokens = int(v.Get("prompt_tokens").Int())
			a.TotalTokens = int(v.Get("total_tokens").Int())
		}
		return true
	})
	if !data.IsArray() {
		return nil, invalid("provider returned an embeddings answer without a data array")
	}
	a.dataStart, a.dataEnd = data.Index, data.Index+len(data.Raw)
	count := 0
	var bad *api.Error
	data.ForEach(func(_, e gjson.Result) bool {
		count++
		idx := e.Get("index")
		emb := e.Get("embedding")
		i := int(idx.Int())
		switch {
		case !e.IsObject() || idx.Type != gjson.Number || float64(i) != idx.Float():
			bad = invalid("provider returned an embedding without an integer index")
		case i < 0 || i >= n:
			bad = invalid("provider returned an embedding for index %d of a request of %d inputs", i, n)
		case a.Elems[i] != nil:
			bad = invalid("provider returned two embeddings for index %d", i)
		case !emb.IsArray() && emb.Type != gjson.String:
			bad = invalid("provider returned an embedding that is neither an array nor a base64 string")
		default:
			a.Elems[i] = body[e.Index : e.Index+len(e.Raw)]
		}
		return bad == nil
	})
	if bad != nil {
		return nil, bad
	}
	if count != n {
		return nil, invalid("provider returned %d embeddings for %d inputs", count, n)
	}
	return a, nil
}

// DataStart and DataEnd are the byte span of the data array in Body.
func (a *Answer) DataStart() int { return a.dataStart }

// DataEnd is the end of the data array in Body (see DataStart).
func (a *Answer) DataEnd() int { return a.dataEnd }

// AppendElement appends a data element with its index set to index; the
// rest of its bytes are as stored.
func AppendElement(dst, elem []byte, index int) []byte {
	idx := gjson.GetBytes(elem, "index")
	if idx.Index <= 0 || idx.Index+len(idx.Raw) > len(elem) {
		// Not where gjson can point (never for a stored element, which
		// ReadAnswer found an index in): rewrite it.
		b, err := sjson.SetBytes(append([]byte(nil), elem...), "index", index)
		if err != nil {
			return append(dst, elem...)
		}
		return append(dst, b...)
	}
	dst = append(dst, elem[:idx.Index]...)
	dst = strconv.AppendInt(dst, int64(index), 10)
	return append(dst, elem[idx.Index+len(idx.Raw):]...)
}

// AppendAnswer appends the client's answer: elems, one per input in the
// client's order, as data with their indexes set, inside the envelope of
// up (the upstream's answer for the misses: object, model, usage and any
// field it has, as it wrote them), or, when every input was a hit (up
// nil), a list naming model. Usage counts the tokens sent upstream for
// this request: prompt and total.
func AppendAnswer(dst []byte, up *Answer, elems [][]byte, model string, prompt, total int) []byte {
	start := len(dst)
	if up == nil {
		dst = append(dst, `{"object":"list","data":`...)
	} else {
		dst = append(dst, up.Body[:up.dataStart]...)
	}
	dst = append(dst, '[')
	for i, e := range elems {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendElement(dst, e, i)
	}
	dst = append(dst, ']')
	if up == nil {
		dst = append(dst, `,"model":`...)
		dst = api.AppendString(dst, model)
		dst = append(dst, `,"usage":{"prompt_tokens":`...)
		dst = strconv.AppendInt(dst, int64(prompt), 10)
		dst = append(dst, `,"total_tokens":`...)
		dst = strconv.AppendInt(dst, int64(total), 10)
		return append(dst, "}}"...)
	}
	dst = append(dst, up.Body[up.dataEnd:]...)
	if up.PromptTokens == prompt && up.TotalTokens == total {
		return dst
	}
	// Two upstream calls answered this request (a coalesced input whose
	// leader gave up was fetched again): usage is their sum.
	out, err := sjson.SetBytes(dst[start:], "usage.prompt_tokens", prompt)
	if err == nil {
		out, err = sjson.SetBytes(out, "usage.total_tokens", total)
	}
	if err != nil {
		return dst
	}
	return append(dst[:start], out...)
}

// Shares splits an upstream call's prompt tokens among the inputs it
// carried (idx), in proportion to their length, so each stored vector
// knows what a hit on it saves; the shares add up to total exactly.
func (req *Request) Shares(total int, idx []int) []int {
	out := make([]int, len(idx))
	if total <= 0 || len(idx) == 0 {
		return out
	}
	sum := 0
	for _, i := range idx {
		sum += len(req.Inputs[i])
	}
	given := 0
	for k, i := range idx {
		out[k] = total * len(req.Inputs[i]) / sum
		given += out[k]
	}
	// The remainder goes one token each to the first inputs (integer
	// division lost less than one per input).
	for k := 0; given < total; k = (k + 1) % len(out) {
		out[k]++
		given++
	}
	return out
}
