package config

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadGoodFile(t *testing.T) {
	cfg, err := Load("testdata/full.good.yml", env(map[string]string{"TEST_OPENAI_KEY": "sk-from-env"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "127.0.0.1" || cfg.Port != 8081 || cfg.LogFormat != "text" {
		t.Fatalf("top-level fields not read: %+v", cfg)
	}
	if cfg.Providers[0].APIKey != "sk-from-env" || cfg.Providers[0].BaseURL != "https://api.openai.com/v1" {
		t.Fatalf("openai provider: %+v", cfg.Providers[0])
	}
	if p := cfg.Providers[1]; p.APIKey != "sk-ant-default" || p.Type != "anthropic" || p.DefaultMaxTokens != 4096 || p.AnthropicVersion == "" {
		t.Fatalf("anthropic provider defaults: %+v", p)
	}
	if cfg.Models[0].Deployments[1].Timeout.D() != 30*time.Second {
		t.Fatalf("deployment timeout: %v", cfg.Models[0].Deployments[1].Timeout.D())
	}
	if cfg.Cache.L1TTL.D() != time.Minute || cfg.Cache.RedisTimeout.D() != 25*time.Millisecond {
		t.Fatalf("durations: %v %v", cfg.Cache.L1TTL.D(), cfg.Cache.RedisTimeout.D())
	}
	if !cfg.Cache.Enabled || cfg.Cache.L2TTL.D() != time.Hour {
		t.Fatal("defaults must survive a file that does not mention them")
	}
	if cfg.MaxBodyMemoryBytes != 128<<20 || cfg.BodyReadTimeout.D() != 45*time.Second {
		t.Fatalf("body limits: %d %v", cfg.MaxBodyMemoryBytes, cfg.BodyReadTimeout.D())
	}
}

func TestBodyLimitsFromEnvironment(t *testing.T) {
	def, err := Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if def.MaxBodyMemoryBytes != 256<<20 || def.BodyReadTimeout.D() != 30*time.Second {
		t.Fatalf("defaults: %d %v", def.MaxBodyMemoryBytes, def.BodyReadTimeout.D())
	}
	for _, c := range []struct {
		memory, timeout string
		wantMemory      int64
		wantTimeout     time.Duration
	}{
		{"64MiB", "5s", 64 << 20, 5 * time.Second},
		{"20000000", "2.5", 20_000_000, 2500 * time.Millisecond},
		{"1GiB", "1m", 1 << 30, time.Minute},
	} {
		cfg, err := Load("", env(map[string]string{"MAX_BODY_MEMORY_BYTES": c.memory, "BODY_READ_TIMEOUT": c.timeout}))
		if err != nil {
			t.Fatalf("%s %s: %v", c.memory, c.timeout, err)
		}
		if cfg.MaxBodyMemoryBytes != c.wantMemory || cfg.BodyReadTimeout.D() != c.wantTimeout {
			t.Fatalf("%s %s: read as %d %v", c.memory, c.timeout, cfg.MaxBodyMemoryBytes, cfg.BodyReadTimeout.D())
		}
	}
}

func TestLoadBadFilesNameTheProblem(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.bad.yml")
	if len(files) == 0 {
		t.Fatal("no bad fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want, err := os.ReadFile(f + ".err")
			if err != nil {
				t.Fatal(err)
			}
			_, err = Load(f, env(nil))
			if err == nil {
				t.Fatal("expected an error")
			}
			if !strings.Contains(err.Error(), strings.TrimSpace(string(want))) {
				t.Fatalf("error %q does not contain %q", err, strings.TrimSpace(string(want)))
			}
		})
	}
}

func TestEnvironmentVariables(t *testing.T) {
	cfg, err := Load("", env(map[string]string{
		"PORT": "9999", "HOST": "127.0.0.1", "OPENAI_API_KEY": "sk-1", "ANTHROPIC_API_KEY": "sk-ant-1",
		"ANTHROPIC_BASE_URL": "http://127.0.0.1:1", "MAX_REQUEST_SIZE": "1MiB", "CACHE_ENABLED": "false",
		"L1_TTL_SECONDS": "5", "L2_TTL_SECONDS": "7", "L1_CACHE_SIZE": "10", "L1_MAX_BYTES": "1024",
		"REDIS_URL": "redis://127.0.0.1:6379/2", "API_KEYS": "a, b", "METRICS_PORT": "0", "LOG_LEVEL": "debug",
		"LOG_FLUSH_INTERVAL": "250ms", "GC_MIN_HEAP": "32MiB", "UPSTREAM_HTTP_CLIENT": "std",
		"MAX_INFLIGHT": "30000", "DEPLOYMENT_MAX_INFLIGHT": "5000",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 9999 || cfg.Host != "127.0.0.1" || cfg.MaxRequestSize != 1<<20 || cfg.Cache.Enabled || cfg.MetricsPort != 0 {
		t.Fatalf("env not applied: %+v", cfg)
	}
	if cfg.Cache.L1TTL.D() != 5*time.Second || cfg.Cache.L2TTL.D() != 7*time.Second || cfg.Cache.L1MaxEntries != 10 || cfg.Cache.L1MaxBytes != 1024 {
		t.Fatalf("cache env: %+v", cfg.Cache)
	}
	if len(cfg.Providers) != 2 || cfg.Providers[1].BaseURL != "http://127.0.0.1:1" || cfg.Providers[1].Type != "anthropic" {
		t.Fatalf("providers from env: %+v", cfg.Providers)
	}
	if len(cfg.Auth.Keys) != 2 || cfg.Auth.Keys[1].Key != "b" {
		t.Fatalf("API_KEYS: %+v", cfg.Auth.Keys)
	}
	if cfg.GCMinHeap != 32<<20 {
		t.Fatalf("GC_MIN_HEAP: %d", cfg.GCMinHeap)
	}
	if cfg.UpstreamHTTPClient != "std" {
		t.Fatalf("UPSTREAM_HTTP_CLIENT: %q", cfg.UpstreamHTTPClient)
	}
	if cfg.Routing.MaxInflight != 30000 || cfg.Routing.DeploymentMaxInflight != 5000 {
		t.Fatalf("MAX_INFLIGHT, DEPLOYMENT_MAX_INFLIGHT: %d, %d", cfg.Routing.MaxInflight, cfg.Routing.DeploymentMaxInflight)
	}
	if cfg, _ := Load("", env(nil)); cfg.UpstreamHTTPClient != "direct" {
		t.Fatalf("default upstream client %q", cfg.UpstreamHTTPClient)
	}
	if cfg.LogFlushInterval.D() != 250*time.Millisecond {
		t.Fatalf("LOG_FLUSH_INTERVAL: %v", cfg.LogFlushInterval.D())
	}
	if cfg, err := Load("", env(map[string]string{"LOG_FLUSH_INTERVAL": "0"})); err != nil || cfg.LogFlushInterval != 0 {
		t.Fatalf("LOG_FLUSH_INTERVAL=0: %v %v", cfg.LogFlushInterval.D(), err)
	}
	if cfg, _ := Load("", env(nil)); cfg.LogFlushInterval.D() != 100*time.Millisecond {
		t.Fatalf("default log flush interval %v", cfg.LogFlushInterval.D())
	}
}

func TestBadEnvironmentValuesAreErrors(t *testing.T) {
	for k, v := range map[string]string{"PORT": "eighty", "CACHE_ENABLED": "maybe", "L1_TTL_SECONDS": "-1", "MAX_REQUEST_SIZE": "big", "LOG_FORMAT": "xml", "LOG_FLUSH_INTERVAL": "soon", "UPSTREAM_HTTP_CLIENT": "fast",
		"BODY_READ_TIMEOUT": "0", "MAX_BODY_MEMORY_BYTES": "1KiB"} {
		t.Run(k, func(t *testing.T) {
			if _, err := Load("", env(map[string]string{k: v})); err == nil || !strings.Contains(err.Error(), strings.ToLower(k[:3])) && !strings.Contains(err.Error(), k) {
				t.Fatalf("%s=%s: got %v", k, v, err)
			}
		})
	}
}

// TestOperationsDocExampleIsValid keeps the documented configuration file
// true: it must parse strictly and validate.
func TestOperationsDocExampleIsValid(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	if !ok {
		t.Fatal("no yaml block in docs/operations.md")
	}
	block, _, _ := strings.Cut(rest, "```")
	cfg := Default()
	getenv := func(k string) string { return "value-of-" + k }
	if err := Parse(&cfg, []byte(block), getenv); err != nil {
		t.Fatalf("documented config does not parse: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("documented config does not validate: %v", err)
	}
	if len(cfg.Providers) != 7 || len(cfg.Auth.Keys) != 2 || cfg.Models[0].Strategy != "least-latency" ||
		cfg.Providers[6].Type != "bedrock" || cfg.Providers[6].Region != "us-east-1" {
		t.Fatalf("documented config read wrongly: %+v", cfg)
	}
	if az, groq := cfg.Providers[4], cfg.Providers[5]; az.Type != "azure" || az.APIVersion != "2024-10-21" ||
		groq.Type != "groq" || groq.BaseURL != "https://api.groq.com/openai/v1" {
		t.Fatalf("documented azure and preset providers read wrongly: %+v %+v", az, groq)
	}
}

func TestAPIKeysAreNamedByDigestOrExplicitlyNeverByPosition(t *testing.T) {
	tests := []struct {
		list string
		want []APIKey
	}{
		{"sk-a, sk-b", []APIKey{{Name: "key-" + digest8("sk-a"), Key: "sk-a"}, {Name: "key-" + digest8("sk-b"), Key: "sk-b"}}},
		{"sk-b,,sk-a ,", []APIKey{{Name: "key-" + digest8("sk-b"), Key: "sk-b"}, {Name: "key-" + digest8("sk-a"), Key: "sk-a"}}},
		{"alice:sk-a@red", []APIKey{{Name: "alice", Key: "sk-a", Team: "red"}}},
		{"sk-a@red,bob:sk-b", []APIKey{{Name: "key-" + digest8("sk-a"), Key: "sk-a", Team: "red"}, {Name: "bob", Key: "sk-b"}}},
	}
	for _, tt := range tests {
		got := ParseAPIKeys(tt.list)
		if len(got) != len(tt.want) {
			t.Fatalf("ParseAPIKeys(%q) = %+v", tt.list, got)
		}
		for i := range got {
			if got[i].Name != tt.want[i].Name || got[i].Key != tt.want[i].Key || got[i].Team != tt.want[i].Team {
				t.Errorf("ParseAPIKeys(%q)[%d] = %+v, want %+v", tt.list, i, got[i], tt.want[i])
			}
		}
	}
}

func digest8(s string) string {
	d := sha256.Sum256([]byte(s))
	return hex.EncodeToString(d[:4])
}

func TestMaxClientTTLFromEnvAndValidated(t *testing.T) {
	cfg, err := Load("", env(map[string]string{"CACHE_MAX_CLIENT_TTL_SECONDS": "60"}))
	if err != nil || cfg.Cache.MaxClientTTL.D() != time.Minute {
		t.Fatalf("CACHE_MAX_CLIENT_TTL_SECONDS: %v %v", cfg.Cache.MaxClientTTL, err)
	}
	cfg.Cache.MaxClientTTL = -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "max_client_ttl") {
		t.Fatalf("negative max_client_ttl: %v", err)
	}
}

func TestBedrockProviderReadsRegionAndKeys(t *testing.T) {
	raw := []byte(`providers:
  - name: aws
    type: bedrock
    region: eu-central-1
    base_url: http://127.0.0.1:9000
    aws_access_key_id: ${KEY_ID}
    aws_secret_access_key: ${SECRET}
    aws_session_token: tok
models:
  - name: claude
    deployments: [{provider: aws, model: "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"}]
`)
	cfg := Default()
	if err := Parse(&cfg, raw, env(map[string]string{"KEY_ID": "AKIDX", "SECRET": "s3cret"})); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p := cfg.Providers[0]
	if p.Type != "bedrock" || p.Region != "eu-central-1" || p.AWSAccessKeyID != "AKIDX" || p.AWSSecretAccessKey != "s3cret" ||
		p.AWSSessionToken != "tok" || p.BaseURL != "http://127.0.0.1:9000" {
		t.Fatalf("bedrock provider: %+v", p)
	}
}

func TestBudgetsAndRuntimeKeysFromEnvAndFile(t *testing.T) {
	cfg, err := Load("", env(map[string]string{"BUDGET_HOLD_TTL_SECONDS": "90", "KEYS_FILE": "/var/lib/edge-agent/keys.json"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.BudgetHoldTTL.D() != 90*time.Second || cfg.Auth.KeysFile != "/var/lib/edge-agent/keys.json" {
		t.Fatalf("BUDGET_HOLD_TTL_SECONDS, KEYS_FILE: %v %q", cfg.Auth.BudgetHoldTTL.D(), cfg.Auth.KeysFile)
	}
	if cfg, _ := Load("", env(nil)); cfg.Auth.BudgetHoldTTL.D() != 10*time.Minute {
		t.Fatalf("default hold TTL %v", cfg.Auth.BudgetHoldTTL.D())
	}
	cfg = Default()
	raw := "auth:\n  teams:\n    - {name: red, budget_daily_usd: 5, budget_monthly_usd: 100}\nprices:\n  my-model: {input: 1, output: 2, max_output: 8192}\n"
	if err := Parse(&cfg, []byte(raw), env(nil)); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.Teams[0] != (Team{Name: "red", BudgetDailyUSD: 5, BudgetMonthlyUSD: 100}) || cfg.Prices["my-model"].MaxOutput != 8192 {
		t.Fatalf("teams, max_output: %+v %+v", cfg.Auth.Teams, cfg.Prices)
	}
}

func TestShutdownDrainDelayFromEnvAndYAML(t *testing.T) {
	cfg, err := Load("", env(map[string]string{"SHUTDOWN_DRAIN_DELAY_SECONDS": "5"}))
	if err != nil || cfg.ShutdownDrainDelay.D() != 5*time.Second {
		t.Fatalf("SHUTDOWN_DRAIN_DELAY_SECONDS=5: %v, %v", cfg.ShutdownDrainDelay.D(), err)
	}
	if cfg, _ := Load("", env(nil)); cfg.ShutdownDrainDelay != 0 {
		t.Fatalf("default drain delay %v, want 0", cfg.ShutdownDrainDelay.D())
	}
	c := Default()
	if err := Parse(&c, []byte("shutdown_drain_delay: 2s\n"), env(nil)); err != nil || c.ShutdownDrainDelay.D() != 2*time.Second {
		t.Fatalf("shutdown_drain_delay: 2s: %v, %v", c.ShutdownDrainDelay.D(), err)
	}
	if _, err := Load("", env(map[string]string{"SHUTDOWN_DRAIN_DELAY_SECONDS": "-1"})); err == nil {
		t.Fatal("a negative drain delay was accepted")
	}
}
