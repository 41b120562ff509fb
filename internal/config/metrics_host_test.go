package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMetricsHostDefaultsToLoopbackAndIsConfigurable(t *testing.T) {
	if cfg, err := Load("", env(nil)); err != nil || cfg.MetricsHost != "127.0.0.1" {
		t.Fatalf("default metrics_host %q, %v; want 127.0.0.1", cfg.MetricsHost, err)
	}
	if cfg, err := Load("", env(map[string]string{"METRICS_HOST": "0.0.0.0"})); err != nil || cfg.MetricsHost != "0.0.0.0" {
		t.Fatalf("METRICS_HOST=0.0.0.0: %q, %v", cfg.MetricsHost, err)
	}
	path := filepath.Join(t.TempDir(), "c.yml")
	if err := os.WriteFile(path, []byte("metrics_host: \"::1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err := Load(path, env(nil)); err != nil || cfg.MetricsHost != "::1" {
		t.Fatalf("metrics_host from YAML: %q, %v", cfg.MetricsHost, err)
	}
	for _, bad := range []string{"not a host", "127.0.0.1:9090", "http://x"} {
		if _, err := Load("", env(map[string]string{"METRICS_HOST": bad})); err == nil || !strings.Contains(err.Error(), "metrics_host") {
			t.Errorf("METRICS_HOST=%q: got %v, want an error naming metrics_host", bad, err)
		}
	}
	cfg := Default()
	cfg.MetricsHost = ""
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "metrics_host") {
		t.Errorf("empty metrics_host: got %v, want an error naming metrics_host", err)
	}
}
