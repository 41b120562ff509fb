package cache

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"
)

func sampleEntry() *Entry {
	return &Entry{
		Body:             []byte(`{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Bring an umbrella."},"finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":5,"total_tokens":125}}`),
		Provider:         "openai",
		Model:            "gpt-4o-mini-2024-07-18",
		StoredAt:         time.Unix(1_700_000_000, 123456789),
		ExpiresAt:        time.Unix(1_700_003_600, 123456789),
		PromptTokens:     120,
		CompletionTokens: 5,
		CostUSD:          0.0000213,
	}
}

func sameEntry(t *testing.T, got, want *Entry) {
	t.Helper()
	if !bytes.Equal(got.Body, want.Body) || got.Provider != want.Provider || got.Model != want.Model ||
		!got.StoredAt.Equal(want.StoredAt) || !got.ExpiresAt.Equal(want.ExpiresAt) ||
		got.PromptTokens != want.PromptTokens || got.CompletionTokens != want.CompletionTokens ||
		!(got.CostUSD == want.CostUSD || math.IsNaN(got.CostUSD) && math.IsNaN(want.CostUSD)) {
		t.Fatalf("decoded %+v\nwant    %+v", got, want)
	}
}

func TestEntryCodecRoundTrips(t *testing.T) {
	unknownCost := sampleEntry()
	unknownCost.CostUSD = math.NaN()
	zero := &Entry{CostUSD: math.NaN()}
	negative := sampleEntry()
	negative.StoredAt = time.Unix(-5, 0)
	for name, e := range map[string]*Entry{"full": sampleEntry(), "unknown cost": unknownCost, "empty": zero, "before 1970": negative} {
		t.Run(name, func(t *testing.T) {
			prefix := []byte("keep")
			b := EncodeEntry(prefix, e)
			if !bytes.HasPrefix(b, []byte("keep")) {
				t.Fatal("EncodeEntry did not append to dst")
			}
			got, err := DecodeEntry(b[len(prefix):])
			if err != nil {
				t.Fatal(err)
			}
			sameEntry(t, got, e)
			if e.StoredAt.IsZero() != got.StoredAt.IsZero() {
				t.Error("zero StoredAt not preserved")
			}
		})
	}
}

func TestDecodeEntryRejectsDamage(t *testing.T) {
	good := EncodeEntry(nil, sampleEntry())
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		return b
	}
	cases := map[string][]byte{
		"empty":          nil,
		"magic only":     good[:1],
		"truncated":      good[:len(good)-1],
		"half":           good[:len(good)/2],
		"wrong magic":    flip(0),
		"future version": flip(1),
		"unknown flags":  flip(2),
		"body bit flip":  flip(len(good) - 20),
		"checksum flip":  flip(len(good) - 1),
		"trailing byte":  append(bytes.Clone(good), 0),
		"not an entry":   []byte(`{"id":"chatcmpl-1"}`),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if e, err := DecodeEntry(b); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeEntry = %v, %v; want ErrCorrupt", e, err)
			}
		})
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(EncodeEntry(nil, sampleEntry()))
	f.Add(EncodeEntry(nil, &Entry{}))
	f.Add([]byte{entryMagic, entryVersion, 0, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode back to the same bytes.
		if again := EncodeEntry(nil, e); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
	})
}

func TestCacheableFollowsFinishReasonPolicy(t *testing.T) {
	for reason, want := range map[string]bool{
		"stop": true, "tool_calls": true, "function_call": true, "length": true,
		"content_filter": false, "": false, "error": false,
	} {
		if got := Cacheable(reason); got != want {
			t.Errorf("Cacheable(%q) = %v, want %v", reason, got, want)
		}
	}
}

func BenchmarkEncodeEntry(b *testing.B) {
	e := sampleEntry()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = EncodeEntry(buf[:0], e)
	}
}

func BenchmarkDecodeEntry(b *testing.B) {
	enc := EncodeEntry(nil, sampleEntry())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEntry(enc); err != nil {
			b.Fatal(err)
		}
	}
}
