package messages

import (
	"bytes"
	"testing"

	"github.com/edge-agent/edge-agent/internal/cache"
)

func key(t *testing.T, body string) cache.Key {
	t.Helper()
	k, err := cache.ComputeKey("ns", "openai", "gpt-4o", KeyBody(nil, []byte(body)))
	if err != nil {
		t.Fatalf("key of %s: %v", body, err)
	}
	return k
}

func TestCacheControlMarkersStayOutOfTheKey(t *testing.T) {
	plain := `{"model":"m","max_tokens":10,"system":[{"type":"text","text":"rules"}],` +
		`"tools":[{"name":"f","input_schema":{"type":"object"}}],` +
		`"messages":[{"role":"user","content":[{"type":"text","text":"q"}]},` +
		`{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"r"}]}]}]}`
	marked := `{"model":"m","max_tokens":10,"system":[{"type":"text","text":"rules","cache_control":{"type":"ephemeral"}}],` +
		`"tools":[{"name":"f","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral","ttl":"1h"}}],` +
		`"messages":[{"role":"user","content":[{"cache_control":{"type":"ephemeral"},"type":"text","text":"q"}]},` +
		`{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","cache_control":{"type":"ephemeral"},"content":[{"type":"text","text":"r","cache_control":{"type":"ephemeral"}}]}]}]}`
	if key(t, plain) != key(t, marked) {
		t.Fatalf("cache_control markers changed the key\nstripped: %s", KeyBody(nil, []byte(marked)))
	}
}

func TestWhatCanChangeTheAnswerStaysInTheKey(t *testing.T) {
	base := `{"model":"m","max_tokens":10,"system":[{"type":"text","text":"rules","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"q"}]`
	for name, other := range map[string]string{
		"system text":           `{"model":"m","max_tokens":10,"system":[{"type":"text","text":"other rules","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"q"}]}`,
		"thinking budget":       base + `,"thinking":{"type":"enabled","budget_tokens":2048}}`,
		"unknown field":         base + `,"future":1}`,
		"schema property":       base + `,"tools":[{"name":"f","input_schema":{"type":"object","properties":{"cache_control":{"type":"string"}}}}]}`,
		"message text":          `{"model":"m","max_tokens":10,"system":[{"type":"text","text":"rules","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"other"}]}`,
		"tool without a marker": base + `,"tools":[{"name":"f","input_schema":{"type":"object"}}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if key(t, base+`}`) == key(t, other) {
				t.Fatalf("%s did not change the key", name)
			}
		})
	}
	// A property named cache_control inside a schema is content, not a marker.
	withProp := base + `,"tools":[{"name":"f","input_schema":{"type":"object","properties":{"cache_control":{"type":"string"}}}}]}`
	withoutProp := base + `,"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}]}`
	if key(t, withProp) == key(t, withoutProp) {
		t.Fatal("a schema property named cache_control was stripped")
	}
}

func TestKeyBodyWithoutMarkersIsTheBodyItself(t *testing.T) {
	body := []byte(`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"q"}]}`)
	if got := KeyBody(nil, body); &got[0] != &body[0] || !bytes.Equal(got, body) {
		t.Fatal("a body without markers was copied")
	}
	if n := testing.AllocsPerRun(100, func() { KeyBody(nil, body) }); n != 0 {
		t.Fatalf("KeyBody allocates %v times for a body without markers", n)
	}
}
