package chat

import (
	"bytes"
	"strconv"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/surface"
)

// AppendJSON appends answer with the gateway's "metadata" member added
// before its closing brace. answer has no metadata of its own: Answer
// removed the provider's (OpenAI echoes stored metadata), and stored
// answers were cleaned before they were stored.
func (r *Request) AppendJSON(dst, answer []byte, m surface.Meta) []byte {
	return AppendWithMetadata(dst, answer, &m)
}

// AppendWithMetadata is AppendJSON for any chat.completion.
func AppendWithMetadata(dst, body []byte, m *surface.Meta) []byte {
	body = bytes.TrimRight(body, " \t\r\n")
	if len(body) < 2 || body[len(body)-1] != '}' {
		return append(dst, body...)
	}
	dst = append(dst, body[:len(body)-1]...)
	if len(bytes.TrimSpace(body[1:len(body)-1])) > 0 {
		dst = append(dst, ',')
	}
	// Every value is a string, as OpenAI's schema declares metadata (a map
	// of strings to strings); a value we do not have is left out, not null.
	dst = append(dst, `"metadata":{"provider":`...)
	dst = api.AppendString(dst, m.Provider)
	dst = append(dst, `,"model":`...)
	dst = api.AppendString(dst, m.Model)
	if m.Tier != "" {
		dst = append(dst, `,"cached":"true","cache_tier":"`...)
		dst = append(dst, m.Tier...)
		dst = append(dst, `","latency_ms":"`...)
		dst = api.AppendMillis(dst, m.Elapsed)
		dst = append(dst, `","cost_usd":"0","saved_cost_usd":"`...)
		dst = api.AppendFloat(dst, m.SavedUSD, 8)
		dst = append(dst, '"')
	} else {
		dst = append(dst, `,"cached":"false","latency_ms":"`...)
		dst = api.AppendMillis(dst, m.Elapsed)
		dst = append(dst, `","provider_latency_ms":"`...)
		dst = api.AppendMillis(dst, m.ProviderLatency)
		dst = append(dst, '"')
		if m.CostKnown {
			dst = append(dst, `,"cost_usd":"`...)
			dst = api.AppendFloat(dst, m.CostUSD, 8)
			dst = append(dst, '"')
			if m.CostEstimated {
				dst = append(dst, `,"cost_estimated":"true"`...)
			}
		}
	}
	if m.Attempts > 1 {
		dst = append(dst, `,"attempts":"`...)
		dst = strconv.AppendInt(dst, int64(m.Attempts), 10)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"request_id":`...)
	dst = api.AppendString(dst, m.RequestID)
	return append(dst, "}}\n"...)
}

// withoutMetadata removes a "metadata" member from an answer, so ours is
// the only one.
func withoutMetadata(body []byte) []byte {
	if !bytes.Contains(body, []byte(`"metadata"`)) || !gjson.GetBytes(body, "metadata").Exists() {
		return body
	}
	if b, err := sjson.DeleteBytes(bytes.Clone(body), "metadata"); err == nil {
		return b
	}
	return body
}
