package bench

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Config describes one load run. DefaultConfig gives the CLI defaults.
type Config struct {
	URL   string
	Model string
	// Label is copied into the result so scripts and the chart generator
	// can tell runs apart.
	Label string

	// Concurrency is the number of workers, each with at most one request
	// in flight. In closed loop each sends its next request when the last
	// one finished; in open loop it bounds the requests in flight.
	Concurrency int
	// Rate > 0 selects open loop: requests are due at a constant rate
	// (req/s) whatever the server does, and latency is measured from when
	// a request was due, not from when a free worker sent it.
	Rate float64

	// Duration and Requests end the measured run, whichever comes first;
	// at least one must be set.
	Duration time.Duration
	Requests int64
	// Warmup runs the same load for this long before measuring and
	// discards what it saw.
	Warmup time.Duration

	Mix         Mix
	Prompts     int     // distinct prompts for MixZipf
	ZipfS       float64 // Zipf exponent, > 0
	StreamShare float64 // fraction of requests with "stream":true
	MaxTokens   int     // 0 leaves max_tokens out
	// RunID is part of every prompt. A fresh one keeps runs from hitting
	// each other's cache entries; repeating one replays the same prompts
	// (for example to measure L2 hits after restarting the gateway).
	RunID string
	Seed  uint64

	Header   http.Header
	Timeout  time.Duration // per request, including reading the whole body
	Interval time.Duration // time series resolution; 0 disables the series

	// Progress, when set, receives a status line every second. ProgressTTY
	// rewrites one line with \r instead of printing one per second.
	Progress    io.Writer
	ProgressTTY bool

	// Transport replaces the tuned HTTP/1.1 transport (tests).
	Transport http.RoundTripper
}

// DefaultConfig returns the defaults of `edge-agent bench`.
func DefaultConfig() Config {
	return Config{
		URL:         "http://127.0.0.1:8080/v1/chat/completions",
		Model:       "gpt-4o-mini",
		Concurrency: 32,
		Duration:    10 * time.Second,
		Mix:         MixSame,
		Prompts:     1000,
		ZipfS:       1.0,
		Timeout:     30 * time.Second,
		Interval:    time.Second,
	}
}

// Validate reports the first invalid field, naming its flag.
func (c *Config) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url: %q is not an http(s) URL", c.URL)
	}
	switch {
	case c.Model == "":
		return errors.New("--model must not be empty")
	case c.Concurrency < 1:
		return fmt.Errorf("--concurrency must be at least 1, got %d", c.Concurrency)
	case c.Rate < 0:
		return fmt.Errorf("--rate must not be negative, got %g", c.Rate)
	case c.Duration < 0 || c.Requests < 0 || c.Warmup < 0:
		return errors.New("--duration, --requests and --warmup must not be negative")
	case c.Duration == 0 && c.Requests == 0:
		return errors.New("set --duration or --requests")
	case c.Mix == MixZipf && c.Prompts < 1:
		return fmt.Errorf("--prompts must be at least 1, got %d", c.Prompts)
	case c.Mix == MixZipf && !(c.ZipfS > 0):
		return fmt.Errorf("--zipf-s must be positive, got %g", c.ZipfS)
	case c.StreamShare < 0 || c.StreamShare > 1:
		return fmt.Errorf("--stream-share must be within 0..1, got %g", c.StreamShare)
	case c.MaxTokens < 0:
		return fmt.Errorf("--max-tokens must not be negative, got %d", c.MaxTokens)
	case c.Timeout <= 0:
		return fmt.Errorf("--timeout must be positive, got %s", c.Timeout)
	case c.Interval < 0:
		return fmt.Errorf("--interval must not be negative, got %s", c.Interval)
	}
	switch c.Mix {
	case MixSame, MixUnique, MixZipf:
	default:
		return fmt.Errorf("--mix: unknown mix %q (want same, unique or zipf)", c.Mix)
	}
	return nil
}

func newRunID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
