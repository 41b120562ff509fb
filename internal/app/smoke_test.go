package app_test

import (
	"testing"

	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

func TestGuideFirstCurlMissesThenHitsL1(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	body := chat("gpt-4", "What is 2+2?")
	r1, b1 := post(t, g.URL, body)
	if r1.StatusCode != 200 || r1.Header.Get("X-Cache-Status") != "MISS" {
		t.Fatalf("first: %d %s %s", r1.StatusCode, r1.Header.Get("X-Cache-Status"), b1)
	}
	r2, _ := post(t, g.URL, body)
	if r2.Header.Get("X-Cache-Status") != "HIT" || r2.Header.Get("X-Cache-Layer") != "L1" {
		t.Fatalf("second: %s %s", r2.Header.Get("X-Cache-Status"), r2.Header.Get("X-Cache-Layer"))
	}
	if s.Calls() != 1 {
		t.Fatalf("provider called %d times, want 1", s.Calls())
	}
}
