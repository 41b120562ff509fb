package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// headerFlag collects repeated --header "Key: value" flags.
// A bad value is kept in err instead of being returned, because the flag
// package would quote it, credentials included, in its message.
type headerFlag struct {
	h   http.Header
	err error
}

func (f *headerFlag) String() string { return "" }

func (f *headerFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, ":")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		if f.err == nil {
			f.err = fmt.Errorf("--header: want Key: value, got %q", redactHeader(s))
		}
		return nil
	}
	f.h.Add(k, strings.TrimSpace(v))
	return nil
}

// redactHeader keeps credentials out of error messages.
func redactHeader(s string) string {
	if k, _, ok := strings.Cut(s, ":"); ok {
		return k + ": …"
	}
	if len(s) > 8 {
		return s[:4] + "…"
	}
	return s
}

// UsageError is a wrong bench command line; the message and the flags have
// been printed on stderr.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Main runs `edge-agent bench` with args (without the subcommand name).
// The report goes to stdout, progress and usage to stderr.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("edge-agent bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: edge-agent bench [flags]\n\nLoad-tests POST /v1/chat/completions and reports throughput, latency,\nerrors, cache hits by tier and time to first token.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	mix := string(cfg.Mix)
	headers := &headerFlag{h: http.Header{}}
	var asJSON, quiet bool
	fs.StringVar(&cfg.URL, "url", cfg.URL, "chat completions `URL`")
	fs.StringVar(&cfg.Model, "model", cfg.Model, "model to request")
	fs.StringVar(&cfg.Label, "label", "", "label copied into the result (for scripts and charts)")
	fs.IntVar(&cfg.Concurrency, "c", cfg.Concurrency, "shorthand for --concurrency")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "workers; in open loop, the most requests in flight")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: requests per second, due on a fixed schedule (0: closed loop)")
	fs.DurationVar(&cfg.Duration, "d", cfg.Duration, "shorthand for --duration")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to measure")
	fs.Int64Var(&cfg.Requests, "n", 0, "shorthand for --requests")
	fs.Int64Var(&cfg.Requests, "requests", 0, "stop after this many requests (without --duration: no time limit)")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "send load this long before measuring")
	fs.StringVar(&mix, "mix", mix, "prompts: same (one prompt), unique (every prompt new), zipf (over --prompts)")
	fs.IntVar(&cfg.Prompts, "prompts", cfg.Prompts, "distinct prompts for --mix zipf")
	fs.Float64Var(&cfg.ZipfS, "zipf-s", cfg.ZipfS, "Zipf exponent for --mix zipf (> 0)")
	fs.Float64Var(&cfg.StreamShare, "stream-share", 0, "fraction of requests sent with \"stream\":true (0..1)")
	fs.IntVar(&cfg.MaxTokens, "max-tokens", 0, "max_tokens for each request (0: not sent)")
	fs.StringVar(&cfg.RunID, "run-id", "", "id inside every prompt; repeat one to replay the same prompts (default: random)")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "random seed for the mix (0: random)")
	fs.Var(headers, "header", "request header `Key: value` (repeatable), e.g. \"Authorization: Bearer ...\"")
	fs.Var(headers, "H", "shorthand for --header")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "per request, until the whole answer is read")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "time series resolution (0: none)")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	fs.BoolVar(&quiet, "quiet", false, "no progress line")
	fs.BoolVar(&quiet, "q", false, "shorthand for --quiet")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &UsageError{Err: err}
	}
	if headers.err != nil {
		fmt.Fprintln(stderr, headers.err)
		return &UsageError{Err: headers.err}
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
		fmt.Fprintf(stderr, "%v\n", err)
		fs.Usage()
		return &UsageError{Err: err}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.Requests > 0 && !set["d"] && !set["duration"] {
		cfg.Duration = 0
	}
	cfg.Mix = Mix(mix)
	cfg.Header = headers.h
	if !quiet {
		cfg.Progress = stderr
		cfg.ProgressTTY = isTerminal(stderr)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "bench: %v\nRun 'edge-agent bench -h' for usage.\n", err)
		return &UsageError{Err: fmt.Errorf("bench: %w", err)}
	}
	res, err := Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(res)
	} else {
		err = res.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if res.Succeeded() == 0 {
		return fmt.Errorf("bench: no request succeeded (%d failed, %d dropped; status %v)", res.Errors, res.Dropped, res.Status)
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
