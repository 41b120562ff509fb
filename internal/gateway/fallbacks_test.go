package gateway

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/surface/chat"
)

func TestRequestFallbacksRejectsNamesWithControlCharacters(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"x"}]`
	for _, tt := range []struct{ name, body, header, param string }{
		{"NUL in a body entry", `{"model":"m","fallbacks":["ok","gpt-4\u0000x"],` + msgs + `}`, "", "fallbacks[1]"},
		{"zero-width space in a body entry", `{"model":"m","fallbacks":["gpt-4\u200b"],` + msgs + `}`, "", "fallbacks[0]"},
		{"overlong body entry", `{"model":"m","fallbacks":["` + strings.Repeat("m", 300) + `"],` + msgs + `}`, "", "fallbacks[0]"},
		{"tab inside a header entry", `{"model":"m",` + msgs + `}`, "a, gpt\t4", "X-Fallback-Models"},
		{"invalid UTF-8 in the header", `{"model":"m",` + msgs + `}`, "gpt-\xff", "X-Fallback-Models"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := chat.Surface{}.Parse([]byte(tt.body), api.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			if tt.header != "" {
				h.Set("X-Fallback-Models", tt.header)
			}
			got, err := requestFallbacks(req, h)
			var e *api.Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Param != tt.param {
				t.Fatalf("got %q, %v; want a 400 on param %s", got, err, tt.param)
			}
		})
	}
}
