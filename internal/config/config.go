// Package config holds edge-agent's typed configuration: defaults, a strict
// YAML file with ${ENV} expansion, environment overrides and validation.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration. The zero value is not usable; start
// from Default().
type Config struct {
	Host        string `yaml:"host"`
	Port        int    `yaml:"port"`
	MetricsPort int    `yaml:"metrics_port"`
	// MetricsHost is the address the METRICS_PORT listener binds: loopback
	// unless the operator opens it (0.0.0.0), so a scraper elsewhere is a
	// decision. Either way it asks for the admin key as /metrics does.
	MetricsHost     string   `yaml:"metrics_host"`
	MaxRequestSize  int64    `yaml:"max_request_size"`
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// ShutdownDrainDelay is how long, after SIGTERM, readiness answers 503
	// while the listener still accepts and serves, before in-flight
	// requests are given ShutdownTimeout to finish: the time endpoints
	// controllers and load balancers take to stop sending (a preStop).
	ShutdownDrainDelay Duration `yaml:"shutdown_drain_delay"`
	LogLevel           string   `yaml:"log_level"`
	LogFormat          string   `yaml:"log_format"`
	LogContent         bool     `yaml:"log_content"` // message content in debug logs; off unless asked
	// LogFlushInterval batches log lines in memory for at most this long
	// (warnings and errors are written at once); 0 writes every line at once.
	LogFlushInterval Duration `yaml:"log_flush_interval"`
	// GCMinHeap is the heap size below which the garbage collector does
	// not run (see internal/gctune); 0 leaves GOGC alone.
	GCMinHeap int64 `yaml:"gc_min_heap"`
	// MaxBodyMemoryBytes bounds the request-body bytes held in memory at
	// once, all requests together; a request past it is a 503.
	MaxBodyMemoryBytes int64 `yaml:"max_body_memory_bytes"`
	// BodyReadTimeout is how long a client may take to send a request
	// body; past it the answer is a 408 and the connection is closed.
	BodyReadTimeout Duration `yaml:"body_read_timeout"`
	// UpstreamHTTPClient picks the client for plain-http upstreams: "direct"
	// (default; HTTP/1.1 on the calling goroutine) or "std" (net/http's
	// Transport, as https upstreams always use).
	UpstreamHTTPClient string `yaml:"upstream_http_client"`
	// DetachStreams serves a stream's upstream call and answer off
	// net/http's connection goroutine (internal/detach): HTTP/1.1 streams
	// then hold about half the memory. false: every answer through
	// net/http.
	DetachStreams bool `yaml:"detach_streams"`
	// MaxCaptureBytes bounds the text of a streamed answer held to cache
	// it; a longer stream reaches the client whole and is not cached.
	MaxCaptureBytes int64 `yaml:"max_capture_bytes"`
	TLS             TLS   `yaml:"tls"`

	Providers []Provider        `yaml:"providers"`
	Models    []Model           `yaml:"models"`
	Aliases   map[string]string `yaml:"aliases"`
	Routing   Routing           `yaml:"routing"`
	Cache     Cache             `yaml:"cache"`
	Auth      Auth              `yaml:"auth"`
	Redact    Redact            `yaml:"redact"`
	Limits    RequestLimits     `yaml:"limits"`
	Prices    map[string]Price  `yaml:"prices"`
	Responses Responses         `yaml:"responses"`
}

// Responses configures the store of the Responses API: the answers of
// POST /v1/responses kept for previous_response_id, GET, DELETE and
// input_items, in Redis when cache.redis_url is set (shared by every
// instance), in memory otherwise.
type Responses struct {
	Store bool `yaml:"store"` // keep responses; off: nothing is kept, GET is a 404
	// StoreTTL is how long a response is kept.
	StoreTTL Duration `yaml:"store_ttl"`
	// StoreMaxBytes bounds the memory store, all responses together; the
	// oldest go first. (Redis is bounded by the TTL and its own maxmemory.)
	StoreMaxBytes int64 `yaml:"store_max_bytes"`
	// StoreMaxEntryBytes bounds one response with its input items; a
	// larger one is answered but not kept.
	StoreMaxEntryBytes int64 `yaml:"store_max_entry_bytes"`
}

// TLS enables HTTPS termination when both paths are set.
type TLS struct {
	CertPath string `yaml:"cert_path"`
	KeyPath  string `yaml:"key_path"`
}

// Provider is one upstream.
type Provider struct {
	Name             string   `yaml:"name"`
	Type             string   `yaml:"type"` // openai | anthropic | azure | bedrock | gemini | vertex | a preset's name (Presets)
	BaseURL          string   `yaml:"base_url"`
	APIKey           string   `yaml:"api_key"`
	Models           []string `yaml:"models"`
	AnthropicVersion string   `yaml:"anthropic_version"`
	DefaultMaxTokens int      `yaml:"default_max_tokens"`
	ConnectTimeout   Duration `yaml:"connect_timeout"`
	MaxIdleConns     int      `yaml:"max_idle_conns"`
	// Surfaces are the APIs beside chat completions an OpenAI-compatible
	// upstream serves itself (responses, embeddings, completions); requests
	// on them are passed through, others translated through chat. Unset:
	// all three for OpenAI's own API, embeddings and completions for any
	// other server.
	Surfaces []string `yaml:"surfaces"`
	// APIVersion is Azure OpenAI's api-version: a date (default
	// 2024-10-21) on the per-deployment paths, or "v1" / "preview" for the
	// v1 endpoint. Type azure only.
	APIVersion string `yaml:"api_version"`
	// Region is the AWS region of a bedrock provider; empty takes the
	// SDK's (AWS_REGION, AWS_DEFAULT_REGION, the profile's region).
	Region string `yaml:"region"`
	// Static AWS keys of a bedrock provider; without them the SDK's
	// default chain supplies credentials (environment, shared config and
	// profiles, web identity, container and instance metadata).
	AWSAccessKeyID     string `yaml:"aws_access_key_id"`
	AWSSecretAccessKey string `yaml:"aws_secret_access_key"`
	AWSSessionToken    string `yaml:"aws_session_token"`
	// Project and Location place a Vertex AI provider (type vertex);
	// unset, GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION fill them.
	Project  string `yaml:"project"`
	Location string `yaml:"location"`
	// AccessToken is a static Vertex AI bearer token; empty: Application
	// Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, the gcloud
	// file, the metadata server).
	AccessToken string `yaml:"access_token"`
}

// Model is an entry of the model table: a name clients use, served by one
// or more deployments.
type Model struct {
	Name        string       `yaml:"name"`
	Aliases     []string     `yaml:"aliases"`
	Strategy    string       `yaml:"strategy"`
	Fallbacks   []string     `yaml:"fallbacks"`
	Deployments []Deployment `yaml:"deployments"`
}

// Deployment is one place a model is served.
type Deployment struct {
	Name        string   `yaml:"name"`
	Provider    string   `yaml:"provider"`
	Model       string   `yaml:"model"`
	Weight      int      `yaml:"weight"`
	Priority    int      `yaml:"priority"`
	RPM         int      `yaml:"rpm"`
	TPM         int      `yaml:"tpm"`
	MaxInflight int      `yaml:"max_inflight"`
	Timeout     Duration `yaml:"timeout"`
}

// Routing holds retry, breaker, timeout and backpressure settings.
type Routing struct {
	MaxRetries        int      `yaml:"max_retries"`
	RetryBaseBackoff  Duration `yaml:"retry_base_backoff"`
	RetryMaxBackoff   Duration `yaml:"retry_max_backoff"`
	BreakerFailures   int      `yaml:"breaker_failures"`
	BreakerRate       float64  `yaml:"breaker_failure_rate"`
	BreakerWindow     Duration `yaml:"breaker_window"`
	BreakerOpenFor    Duration `yaml:"breaker_open_for"`
	FirstByteTimeout  Duration `yaml:"first_byte_timeout"`
	StreamIdleTimeout Duration `yaml:"stream_idle_timeout"`
	TotalTimeout      Duration `yaml:"total_timeout"`
	// MaxInflight bounds the requests the router holds at once, and
	// DeploymentMaxInflight those of one deployment that sets no
	// max_inflight of its own. 0 derives both from the file-descriptor
	// limit: max(20000, RLIMIT_NOFILE/2), at most 200000 (each proxied
	// request holds two descriptors, the client's and the upstream's).
	MaxInflight           int      `yaml:"max_inflight"`
	DeploymentMaxInflight int      `yaml:"deployment_max_inflight"`
	QueueWait             Duration `yaml:"queue_wait"`
}

// Cache configures both tiers.
type Cache struct {
	Enabled      bool     `yaml:"enabled"`
	L1MaxBytes   int64    `yaml:"l1_max_bytes"`
	L1MaxEntries int      `yaml:"l1_max_entries"`
	L1TTL        Duration `yaml:"l1_ttl"`
	L2TTL        Duration `yaml:"l2_ttl"`
	RedisURL     string   `yaml:"redis_url"`
	RedisCluster bool     `yaml:"redis_cluster"`
	RedisTimeout Duration `yaml:"redis_timeout"`
	CoalesceWait Duration `yaml:"coalesce_wait"`
	// MaxClientTTL bounds X-Cache-TTL and Cache-Control max-age; 0 takes
	// L2TTL, so a client can never keep an entry longer than the operator.
	MaxClientTTL Duration `yaml:"max_client_ttl"`
}

// Auth configures client keys and limits.
type Auth struct {
	AdminKey  string   `yaml:"admin_key"`
	Keys      []APIKey `yaml:"keys"`
	RPM       int      `yaml:"rpm"`   // per-key default
	Burst     int      `yaml:"burst"` // per-key default
	TPM       int      `yaml:"tpm"`   // per-key default
	GlobalRPM int      `yaml:"global_rpm"`
	GlobalTPM int      `yaml:"global_tpm"`
	// Teams give teams (the team of keys) budgets all their keys share.
	Teams []Team `yaml:"teams"`
	// BudgetHoldTTL is how long a hard budget's hold on the maximum cost of
	// a request lives if the request never settles (an instance crashed).
	BudgetHoldTTL Duration `yaml:"budget_hold_ttl"`
	// KeysFile keeps the keys created through /admin/keys when there is no
	// Redis; "" with no Redis: /admin/keys cannot create keys.
	KeysFile string `yaml:"keys_file"`
}

// Team is a team's shared budget, in US dollars; 0 means none.
type Team struct {
	Name             string  `yaml:"name"`
	BudgetDailyUSD   float64 `yaml:"budget_daily_usd"`
	BudgetMonthlyUSD float64 `yaml:"budget_monthly_usd"`
}

// APIKey is one client key.
type APIKey struct {
	Name             string   `yaml:"name"`
	Key              string   `yaml:"key"`
	KeySHA256        string   `yaml:"key_sha256"`
	Models           []string `yaml:"models"`
	RPM              int      `yaml:"rpm"`
	TPM              int      `yaml:"tpm"`
	Burst            int      `yaml:"burst"`
	BudgetDailyUSD   float64  `yaml:"budget_daily_usd"`
	BudgetMonthlyUSD float64  `yaml:"budget_monthly_usd"`
	CacheScope       string   `yaml:"cache_scope"` // isolated (default) or shared
	Team             string   `yaml:"team"`        // cache group shared with the team's other keys
	AllowCacheBypass *bool    `yaml:"allow_cache_bypass"`
	ShowCacheKey     bool     `yaml:"show_cache_key"`
	Redact           *bool    `yaml:"redact"`
}

// Redact configures PII redaction.
type Redact struct {
	Enabled  bool      `yaml:"enabled"`
	Patterns []Pattern `yaml:"patterns"`
}

// Pattern is an extra redaction rule.
type Pattern struct {
	Name   string `yaml:"name"`
	Regexp string `yaml:"regexp"`
}

// RequestLimits bound request contents.
type RequestLimits struct {
	MaxMessages  int   `yaml:"max_messages"`
	MaxMaxTokens int64 `yaml:"max_max_tokens"`
	MaxN         int64 `yaml:"max_n"`
}

// Price overrides or extends the built-in price table (USD per million tokens).
type Price struct {
	Input       float64 `yaml:"input"`
	Output      float64 `yaml:"output"`
	CachedInput float64 `yaml:"cached_input"` // prompt-cache reads; 0: the input price
	// Anthropic prompt-cache writes; 0: 1.25x (5-minute) and 2x (1-hour) the input price.
	CacheWrite5m float64 `yaml:"cache_write_5m"`
	CacheWrite1h float64 `yaml:"cache_write_1h"`
	// MaxOutput is the model's output limit in tokens (0: the built-in
	// table's, if any), what a hard budget holds for a request without max_tokens.
	MaxOutput int64 `yaml:"max_output"`
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Host:               "0.0.0.0",
		Port:               8080,
		MetricsPort:        9090,
		MetricsHost:        "127.0.0.1",
		MaxRequestSize:     10 << 20,
		MaxBodyMemoryBytes: 256 << 20,
		BodyReadTimeout:    Duration(30 * time.Second),
		ShutdownTimeout:    Duration(30 * time.Second),
		LogLevel:           "info",
		LogFormat:          "json",
		LogFlushInterval:   Duration(100 * time.Millisecond),
		GCMinHeap:          64 << 20,
		UpstreamHTTPClient: "direct",
		DetachStreams:      true,
		MaxCaptureBytes:    4 << 20,
		Cache: Cache{
			Enabled:      true,
			L1MaxBytes:   256 << 20,
			L1MaxEntries: 100_000,
			L1TTL:        Duration(300 * time.Second),
			L2TTL:        Duration(3600 * time.Second),
			RedisTimeout: Duration(50 * time.Millisecond),
			CoalesceWait: Duration(120 * time.Second),
		},
		Auth:    Auth{BudgetHoldTTL: Duration(10 * time.Minute)},
		Routing: Routing{MaxRetries: 2},
		Limits:  RequestLimits{MaxMessages: 2048, MaxMaxTokens: 1_000_000, MaxN: 16},
		Responses: Responses{
			Store:              true,
			StoreTTL:           Duration(24 * time.Hour),
			StoreMaxBytes:      64 << 20,
			StoreMaxEntryBytes: 4 << 20,
		},
	}
}

// Load builds the configuration: defaults, then the YAML file (if path is
// not empty), then environment variables, then validation.
func Load(path string, getenv func(string) string) (Config, error) {
	cfg := Default()
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		if err := Parse(&cfg, raw, getenv); err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := ApplyEnv(&cfg, getenv); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// Parse decodes a YAML document into cfg strictly: an unknown key is an
// error that names it. ${NAME} and ${NAME:-default} are expanded first.
func Parse(cfg *Config, raw []byte, getenv func(string) string) error {
	expanded, err := expandEnv(raw, getenv)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file is a valid, empty configuration
		}
		return cleanYAMLError(err)
	}
	return nil
}

func cleanYAMLError(err error) error {
	// yaml.v3 says "field foo not found in type config.Config"; say it in
	// the words of the file.
	msg := regexp.MustCompile(`field (\S+) not found in type \S+`).ReplaceAllString(err.Error(), "unknown key \"$1\"")
	return errors.New(msg)
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

func expandEnv(raw []byte, getenv func(string) string) ([]byte, error) {
	// An unset variable expands to "", as in a shell; Validate reports what
	// that breaks.
	return envRef.ReplaceAllFunc(raw, func(m []byte) []byte {
		sub := envRef.FindSubmatch(m)
		if v := getenv(string(sub[1])); v != "" {
			return []byte(v)
		}
		return sub[3]
	}), nil
}

// ApplyEnv overrides cfg from the documented environment variables.
func ApplyEnv(cfg *Config, getenv func(string) string) error {
	var errs []error
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	integer := func(name string, dst *int) {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not an integer", name, v))
				return
			}
			*dst = n
		}
	}
	int64v := func(name string, dst *int64) {
		if v := getenv(name); v != "" {
			n, err := parseSize(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				return
			}
			*dst = n
		}
	}
	boolean := func(name string, dst *bool) {
		if v := getenv(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not a boolean", name, v))
				return
			}
			*dst = b
		}
	}
	seconds := func(name string, dst *Duration) {
		if v := getenv(name); v != "" {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil || n < 0 {
				errs = append(errs, fmt.Errorf("%s: %q is not a number of seconds", name, v))
				return
			}
			*dst = Duration(n * float64(time.Second))
		}
	}
	str("HOST", &cfg.Host)
	integer("PORT", &cfg.Port)
	integer("METRICS_PORT", &cfg.MetricsPort)
	str("METRICS_HOST", &cfg.MetricsHost)
	int64v("MAX_REQUEST_SIZE", &cfg.MaxRequestSize)
	int64v("MAX_BODY_MEMORY_BYTES", &cfg.MaxBodyMemoryBytes)
	if v := getenv("BODY_READ_TIMEOUT"); v != "" {
		// A duration (30s, 1m) or a number of seconds.
		d, err := time.ParseDuration(v)
		if f, ferr := strconv.ParseFloat(v, 64); ferr == nil {
			d, err = time.Duration(f*float64(time.Second)), nil
		}
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("BODY_READ_TIMEOUT: %q is not a positive duration such as 30s", v))
		} else {
			cfg.BodyReadTimeout = Duration(d)
		}
	}
	int64v("GC_MIN_HEAP", &cfg.GCMinHeap)
	integer("MAX_INFLIGHT", &cfg.Routing.MaxInflight)
	integer("DEPLOYMENT_MAX_INFLIGHT", &cfg.Routing.DeploymentMaxInflight)
	str("LOG_LEVEL", &cfg.LogLevel)
	str("LOG_FORMAT", &cfg.LogFormat)
	str("UPSTREAM_HTTP_CLIENT", &cfg.UpstreamHTTPClient)
	int64v("MAX_CAPTURE_BYTES", &cfg.MaxCaptureBytes)
	if v := getenv("LOG_FLUSH_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if v == "0" {
			d, err = 0, nil
		}
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("LOG_FLUSH_INTERVAL: %q is not a duration such as 100ms or 0", v))
		} else {
			cfg.LogFlushInterval = Duration(d)
		}
	}
	str("TLS_CERT_PATH", &cfg.TLS.CertPath)
	str("TLS_KEY_PATH", &cfg.TLS.KeyPath)
	seconds("SHUTDOWN_TIMEOUT_SECONDS", &cfg.ShutdownTimeout)
	seconds("SHUTDOWN_DRAIN_DELAY_SECONDS", &cfg.ShutdownDrainDelay)

	boolean("CACHE_ENABLED", &cfg.Cache.Enabled)
	int64v("L1_MAX_BYTES", &cfg.Cache.L1MaxBytes)
	integer("L1_CACHE_SIZE", &cfg.Cache.L1MaxEntries)
	seconds("L1_TTL_SECONDS", &cfg.Cache.L1TTL)
	seconds("L2_TTL_SECONDS", &cfg.Cache.L2TTL)
	seconds("CACHE_MAX_CLIENT_TTL_SECONDS", &cfg.Cache.MaxClientTTL)
	str("REDIS_URL", &cfg.Cache.RedisURL)
	boolean("REDIS_CLUSTER", &cfg.Cache.RedisCluster)
	if v := getenv("REDIS_TIMEOUT_MS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("REDIS_TIMEOUT_MS: %q is not a positive integer", v))
		} else {
			cfg.Cache.RedisTimeout = Duration(time.Duration(n) * time.Millisecond)
		}
	}

	str("ADMIN_API_KEY", &cfg.Auth.AdminKey)
	integer("RATE_LIMIT_RPM", &cfg.Auth.RPM)
	integer("RATE_LIMIT_BURST", &cfg.Auth.Burst)
	integer("RATE_LIMIT_TPM", &cfg.Auth.TPM)
	seconds("BUDGET_HOLD_TTL_SECONDS", &cfg.Auth.BudgetHoldTTL)
	str("KEYS_FILE", &cfg.Auth.KeysFile)
	if v := getenv("API_KEYS"); v != "" {
		cfg.Auth.Keys = append(cfg.Auth.Keys, ParseAPIKeys(v)...)
	}
	boolean("REDACT_PII", &cfg.Redact.Enabled)
	boolean("DETACH_STREAMS", &cfg.DetachStreams)
	boolean("RESPONSES_STORE", &cfg.Responses.Store)
	seconds("RESPONSES_STORE_TTL_SECONDS", &cfg.Responses.StoreTTL)
	int64v("RESPONSES_STORE_MAX_BYTES", &cfg.Responses.StoreMaxBytes)
	int64v("RESPONSES_STORE_MAX_ENTRY_BYTES", &cfg.Responses.StoreMaxEntryBytes)
	integer("MAX_RETRIES", &cfg.Routing.MaxRetries)

	envProvider(cfg, getenv, "openai", "OPENAI_API_KEY", "OPENAI_BASE_URL")
	envProvider(cfg, getenv, "anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")
	envProvider(cfg, getenv, "azure", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT")
	if v := getenv("AZURE_OPENAI_API_VERSION"); v != "" {
		for i := range cfg.Providers {
			if cfg.Providers[i].Name == "azure" {
				cfg.Providers[i].APIVersion = v
			}
		}
	}
	applyPresetEnv(cfg, getenv)
	envProvider(cfg, getenv, "gemini", "GEMINI_API_KEY", "GEMINI_BASE_URL")
	// Vertex AI providers are configured, never implied: these only fill
	// what a configured one leaves unset, as Google's own tools read them.
	for i := range cfg.Providers {
		if p := &cfg.Providers[i]; p.Type == "vertex" || p.Type == "" && p.Name == "vertex" {
			if p.Project == "" {
				p.Project = getenv("GOOGLE_CLOUD_PROJECT")
			}
			if p.Location == "" {
				p.Location = getenv("GOOGLE_CLOUD_LOCATION")
			}
		}
	}
	return errors.Join(errs...)
}

// envProvider adds or updates the provider called name from its key and
// base URL variables. A base URL alone is enough (a local mirror needs no key).
func envProvider(cfg *Config, getenv func(string) string, name, keyVar, urlVar string) {
	key, url := getenv(keyVar), getenv(urlVar)
	if key == "" && url == "" {
		return
	}
	for i := range cfg.Providers {
		if cfg.Providers[i].Name == name {
			if key != "" {
				cfg.Providers[i].APIKey = key
			}
			if url != "" {
				cfg.Providers[i].BaseURL = url
			}
			return
		}
	}
	cfg.Providers = append(cfg.Providers, Provider{Name: name, Type: name, APIKey: key, BaseURL: url})
}

// azureVersionRe is an Azure OpenAI api-version: a date, maybe a preview,
// or the v1 endpoint's names.
var azureVersionRe = regexp.MustCompile(`^(?:\d{4}-\d{2}-\d{2}(?:-preview)?|v1|preview)$`)

var hostNameRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.\-]{0,251}[A-Za-z0-9])?$`)

// Validate checks the configuration and fills per-provider defaults.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Port < 0 || c.Port > 65535 {
		bad("port: %d is out of range", c.Port)
	}
	if c.MetricsPort < 0 || c.MetricsPort > 65535 {
		bad("metrics_port: %d is out of range", c.MetricsPort)
	}
	for name, p := range c.Prices {
		if p.Input < 0 || p.Output < 0 || p.CachedInput < 0 || p.CacheWrite5m < 0 || p.CacheWrite1h < 0 {
			bad("prices.%s: a price is negative", name)
		}
		if p.MaxOutput < 0 {
			bad("prices.%s.max_output: must not be negative", name)
		}
	}
	if _, err := netip.ParseAddr(c.MetricsHost); err != nil && !hostNameRe.MatchString(c.MetricsHost) {
		bad("metrics_host: %q is not an IP address or a host name", c.MetricsHost)
	}
	if c.UpstreamHTTPClient != "" && c.UpstreamHTTPClient != "direct" && c.UpstreamHTTPClient != "std" {
		bad("upstream_http_client: %q is not direct or std", c.UpstreamHTTPClient)
	}
	if c.Responses.Store {
		if c.Responses.StoreTTL <= 0 {
			bad("responses.store_ttl: must be positive (turn the store off with responses.store: false)")
		}
		if c.Responses.StoreMaxBytes <= 0 {
			bad("responses.store_max_bytes: must be positive")
		}
		if c.Responses.StoreMaxEntryBytes <= 0 || c.Responses.StoreMaxEntryBytes > c.Responses.StoreMaxBytes {
			bad("responses.store_max_entry_bytes: must be positive and at most responses.store_max_bytes")
		}
	}
	if c.MaxCaptureBytes <= 0 || c.MaxCaptureBytes > 1<<30 {
		bad("max_capture_bytes: must be between 1 and 1GiB")
	}
	if c.GCMinHeap < 0 {
		bad("gc_min_heap: must be 0 (off) or a number of bytes")
	}
	if c.Routing.MaxInflight < 0 {
		bad("routing.max_inflight: must be 0 (from the file-descriptor limit) or positive")
	}
	if c.Routing.DeploymentMaxInflight < 0 {
		bad("routing.deployment_max_inflight: must be 0 (from the file-descriptor limit) or positive")
	}
	if c.ShutdownDrainDelay < 0 {
		bad("shutdown_drain_delay: must not be negative")
	}
	if c.MaxRequestSize <= 0 {
		bad("max_request_size: must be positive")
	}
	if c.MaxBodyMemoryBytes < c.MaxRequestSize {
		// Below it, a body of the allowed size could never be read.
		bad("max_body_memory_bytes: %d must be at least max_request_size (%d)", c.MaxBodyMemoryBytes, c.MaxRequestSize)
	}
	if c.BodyReadTimeout <= 0 {
		bad("body_read_timeout: must be positive")
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "warning", "error":
	default:
		bad("log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		bad("log_format: %q is not json or text", c.LogFormat)
	}
	if (c.TLS.CertPath == "") != (c.TLS.KeyPath == "") {
		bad("tls: cert_path and key_path must be set together")
	}
	names := map[string]bool{}
	for i := range c.Providers {
		p := &c.Providers[i]
		if p.Name == "" {
			bad("providers[%d].name: required", i)
		}
		if strings.Contains(p.Name, "/") {
			bad("providers[%d].name: %q must not contain '/'", i, p.Name)
		}
		if names[p.Name] {
			bad("providers[%d].name: %q is defined twice", i, p.Name)
		}
		names[p.Name] = true
		if ps, ok := presetOf(p); ok {
			resolvePreset(p, ps)
		}
		if p.Type == "" {
			switch p.Name {
			case "anthropic", "azure", "gemini", "vertex":
				p.Type = p.Name
			default:
				p.Type = "openai"
			}
		}
		if p.APIVersion != "" && p.Type != "azure" {
			bad("providers[%d].api_version: only Azure OpenAI providers (type azure) take an api_version", i)
		}
		_, preset := PresetNamed(p.Type)
		switch {
		case p.Type == "openai" || preset:
			if p.BaseURL == "" {
				if p.Name != "openai" {
					bad("providers[%d].base_url: required for OpenAI-compatible provider %q", i, p.Name)
				}
				p.BaseURL = "https://api.openai.com/v1"
			}
			if p.Surfaces == nil {
				p.Surfaces = []string{"embeddings", "completions"}
				if strings.HasPrefix(p.BaseURL, "https://api.openai.com/") {
					p.Surfaces = []string{"responses", "embeddings", "completions"}
				}
			}
			for _, s := range p.Surfaces {
				switch s {
				case "chat", "responses", "embeddings", "completions":
				default:
					bad("providers[%d].surfaces: %q is not one of chat, responses, embeddings, completions", i, s)
				}
			}
		case p.Type == "azure":
			if p.BaseURL == "" {
				bad("providers[%d].base_url: required for Azure OpenAI provider %q: the resource root, https://RESOURCE.openai.azure.com (or AZURE_OPENAI_ENDPOINT)", i, p.Name)
			}
			if p.APIVersion == "" {
				p.APIVersion = "2024-10-21"
			} else if !azureVersionRe.MatchString(p.APIVersion) {
				bad("providers[%d].api_version: %q is not a dated version (2024-10-21, 2025-04-01-preview), v1 or preview", i, p.APIVersion)
			}
			if p.Surfaces != nil {
				bad("providers[%d].surfaces: Azure OpenAI serves chat, responses and embeddings itself; surfaces does not apply", i)
			}
		case p.Type == "anthropic":
			if p.BaseURL == "" {
				p.BaseURL = "https://api.anthropic.com"
			}
			if p.AnthropicVersion == "" {
				p.AnthropicVersion = "2023-06-01"
			}
			if p.DefaultMaxTokens == 0 {
				p.DefaultMaxTokens = 4096
			}
		case p.Type == "bedrock":
			if (p.AWSAccessKeyID == "") != (p.AWSSecretAccessKey == "") {
				bad("providers[%d].aws_access_key_id: aws_access_key_id and aws_secret_access_key must be set together", i)
			}
			if p.AWSSessionToken != "" && p.AWSAccessKeyID == "" {
				bad("providers[%d].aws_session_token: needs aws_access_key_id and aws_secret_access_key", i)
			}
			if p.APIKey != "" {
				bad("providers[%d].api_key: bedrock signs with AWS credentials: use aws_access_key_id and aws_secret_access_key, or the AWS default chain", i)
			}
		case p.Type == "gemini":
			if p.BaseURL == "" {
				p.BaseURL = "https://generativelanguage.googleapis.com"
			}
			if p.APIKey == "" && p.BaseURL == "https://generativelanguage.googleapis.com" {
				bad("providers[%d].api_key: required for Google AI Studio provider %q (GEMINI_API_KEY)", i, p.Name)
			}
		case p.Type == "vertex":
			if p.Project == "" {
				bad("providers[%d].project: required for Vertex AI provider %q (GOOGLE_CLOUD_PROJECT)", i, p.Name)
			}
			if p.Location == "" {
				bad("providers[%d].location: required for Vertex AI provider %q (GOOGLE_CLOUD_LOCATION), e.g. us-central1 or global", i, p.Name)
			} else if !hostNameRe.MatchString(p.Location) || strings.Contains(p.Location, ".") {
				bad("providers[%d].location: %q is not a Google Cloud location", i, p.Location)
			}
			if p.BaseURL == "" && p.Location != "" {
				p.BaseURL = "https://" + p.Location + "-aiplatform.googleapis.com"
				if p.Location == "global" {
					p.BaseURL = "https://aiplatform.googleapis.com"
				}
			}
		default:
			bad("providers[%d].type: %q is not openai, anthropic, azure, bedrock, gemini, vertex or a preset (%s)", i, p.Type, presetNames())
		}
	}
	for i, m := range c.Models {
		if m.Name == "" {
			bad("models[%d].name: required", i)
		}
		if len(m.Deployments) == 0 {
			bad("models[%d].deployments: %q needs at least one deployment", i, m.Name)
		}
		for j, d := range m.Deployments {
			if !names[d.Provider] {
				bad("models[%d].deployments[%d].provider: %q is not a configured provider", i, j, d.Provider)
			}
		}
		switch m.Strategy {
		case "", "weighted", "least-latency", "lowest-cost", "priority":
		default:
			bad("models[%d].strategy: %q is not weighted, least-latency, lowest-cost or priority", i, m.Strategy)
		}
	}
	if c.Cache.L1MaxBytes < 0 || c.Cache.L1MaxEntries < 0 {
		bad("cache: L1 bounds must not be negative")
	}
	if c.Cache.MaxClientTTL < 0 {
		bad("cache.max_client_ttl: must not be negative")
	}
	for i, k := range c.Auth.Keys {
		if k.Key == "" && k.KeySHA256 == "" {
			bad("auth.keys[%d]: key or key_sha256 required", i)
		}
		switch k.CacheScope {
		case "", "shared", "isolated":
		default:
			bad("auth.keys[%d].cache_scope: %q is not shared or isolated", i, k.CacheScope)
		}
		if k.Team != "" && k.CacheScope != "" {
			bad("auth.keys[%d]: set team or cache_scope, not both", i)
		}
	}
	if c.Auth.BudgetHoldTTL <= 0 {
		bad("auth.budget_hold_ttl: must be positive")
	}
	teams := make(map[string]bool, len(c.Auth.Teams))
	for i, t := range c.Auth.Teams {
		switch {
		case t.Name == "":
			bad("auth.teams[%d].name: required", i)
		case teams[t.Name]:
			bad("auth.teams[%d].name: duplicate team %q", i, t.Name)
		}
		teams[t.Name] = true
		if t.BudgetDailyUSD < 0 || t.BudgetMonthlyUSD < 0 {
			bad("auth.teams[%d]: budgets must not be negative", i)
		}
	}
	return errors.Join(errs...)
}

// parseSize reads a byte count: 1048576, 10MiB, 10MB, 512KiB.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a byte size", s)
	}
	return n * mult, nil
}

// Duration is a time.Duration that YAML reads as "1.5s", "300ms" or a
// number of seconds.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a duration", n.Line)
	}
	if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
		*d = Duration(f * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Models GET /v1/models lists in demo mode: the names the README's examples
// use, each routed to the simulated provider through the provider that
// serves it for real (claude-* through the Anthropic translation). Any
// other gpt-* or claude-* name routes too.
func demoModels() (openai, anthropic []string) {
	return []string{"gpt-4", "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini",
			"text-embedding-3-small", "text-embedding-3-large", "gpt-3.5-turbo-instruct"},
		[]string{"claude-3-5-sonnet-20241022", "claude-sonnet-4-5", "claude-haiku-4-5"}
}

// The simulated Bedrock endpoint's credentials (simulated.BedrockAccessKeyID
// and BedrockSecretAccessKey; a test keeps them equal), for the demo.
const (
	DemoBedrockAccessKeyID     = "AKIDSIMULATEDBEDROCK"
	DemoBedrockSecretAccessKey = "simulated/bedrock/wJalrXUtnFEMI/K7MDENG+EXAMPLEKEY"
)

// UseDemoProvider points the "openai", "anthropic", "gemini", "azure" and
// "bedrock" providers at the simulated provider served at base (no keys needed), replacing any
// configured ones, and registers a "sim" OpenAI-compatible provider. The
// demo's model names are listed by GET /v1/models (the Anthropic ones as
// aliases of "anthropic/<name>", which lists them); aliases already
// configured win.
func UseDemoProvider(c *Config, base string) {
	openaiModels, anthropicModels := demoModels()
	demo := []Provider{
		// The simulated server speaks the Responses API as OpenAI does.
		{Name: "openai", Type: "openai", BaseURL: base + "/v1", APIKey: "demo", Models: openaiModels, Surfaces: []string{"responses", "embeddings", "completions"}},
		{Name: "anthropic", Type: "anthropic", BaseURL: base, APIKey: "demo", AnthropicVersion: "2023-06-01", DefaultMaxTokens: 4096},
		{Name: "sim", Type: "openai", BaseURL: base + "/v1", APIKey: "demo", Models: []string{"sim-small", "sim-large"}},
		{Name: "gemini", Type: "gemini", BaseURL: base, APIKey: "demo", Models: []string{"gemini-2.5-flash", "gemini-2.5-pro"}},
		// Reached as "azure/<deployment>" and "bedrock/<model id>"; the
		// simulated Bedrock endpoint checks SigV4 signatures made with
		// these (its own published test credentials).
		{Name: "azure", Type: "azure", BaseURL: base, APIKey: "demo", APIVersion: "2024-10-21"},
		{Name: "bedrock", Type: "bedrock", BaseURL: base, Region: "us-east-1",
			AWSAccessKeyID: DemoBedrockAccessKeyID, AWSSecretAccessKey: DemoBedrockSecretAccessKey},
	}
	var keep []Provider
	for _, p := range c.Providers {
		if !slices.ContainsFunc(demo, func(d Provider) bool { return d.Name == p.Name }) {
			keep = append(keep, p)
		}
	}
	c.Providers = append(demo, keep...)
	if c.Aliases == nil {
		c.Aliases = make(map[string]string, len(anthropicModels))
	}
	for _, m := range anthropicModels {
		if _, ok := c.Aliases[m]; !ok {
			c.Aliases[m] = "anthropic/" + m
		}
	}
}

// ParseAPIKeys reads API_KEYS: comma-separated entries "[name:]secret[@team]".
// A key without a name is named "key-" plus the first 8 hex digits of its
// SHA-256, so its identity (rate limits, budgets, logs, cache scope) stays
// the same whatever its position in the list, and the name reveals nothing
// usable about the key. "@team" puts the key in that cache group.
func ParseAPIKeys(list string) []APIKey {
	var out []APIKey
	for e := range strings.SplitSeq(list, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		var k APIKey
		if i := strings.LastIndexByte(e, '@'); i >= 0 {
			e, k.Team = e[:i], e[i+1:]
		}
		if name, secret, ok := strings.Cut(e, ":"); ok {
			k.Name, e = name, secret
		}
		k.Key = e
		if k.Name == "" {
			d := sha256.Sum256([]byte(k.Key))
			k.Name = "key-" + hex.EncodeToString(d[:4])
		}
		out = append(out, k)
	}
	return out
}
