package app_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/app"
	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/telemetry"
)

// serveBriefly starts the gateway on a loopback port, waits for its
// "listening" line and stops it, returning its logs.
func serveBriefly(t *testing.T, cfg config.Config) string {
	t.Helper()
	logs := &syncBuffer{}
	logger, err := telemetry.NewLogger(logs, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ln, err := app.ListenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	waitFor(t, "the listening line", func() bool { return strings.Contains(logs.String(), "edge-agent listening") })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return logs.String()
}

// TestStartupSaysWhatItRuns: a warning when no provider is configured or
// Redis does not answer (without its password), and where traces go.
func TestStartupSaysWhatItRuns(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadRedis := "redis://user:s3cret@" + ln.Addr().String() + "/0"
	ln.Close()
	s := startSim(t, simulated.Options{})
	tests := []struct {
		name    string
		cfg     func() config.Config
		otlp    string
		want    []string
		wantNot []string
	}{
		{name: "no provider", cfg: func() config.Config { c := config.Default(); c.MetricsPort = 0; return c },
			want: []string{`"level":"WARN","msg":"no provider configured`, "tracing off"}},
		{name: "redis unreachable", cfg: func() config.Config { c := simConfig(s); c.Cache.RedisURL = deadRedis; return c },
			want:    []string{`"level":"WARN","msg":"Redis unreachable at start`, "user:xxxxx@"},
			wantNot: []string{"s3cret", "no provider configured"}},
		{name: "tracing on", cfg: func() config.Config { return simConfig(s) }, otlp: "http://127.0.0.1:4318",
			want:    []string{`tracing on: spans exported over OTLP/HTTP","endpoint":"http://127.0.0.1:4318/v1/traces"`},
			wantNot: []string{"no provider configured", "Redis unreachable", "tracing off"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tt.otlp)
			t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
			logs := serveBriefly(t, tt.cfg())
			for _, w := range tt.want {
				if !strings.Contains(logs, w) {
					t.Errorf("start-up logs lack %q:\n%s", w, logs)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(logs, w) {
					t.Errorf("start-up logs contain %q:\n%s", w, logs)
				}
			}
		})
	}
}
