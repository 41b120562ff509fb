// Command edge-agent is an OpenAI-compatible LLM edge gateway with a
// multi-tier cache, provider routing and failover.
//
//	edge-agent [serve] [--config FILE] [--demo]   serve the gateway
//	edge-agent simulate [flags]                   run the simulated provider
//	edge-agent bench [flags]                      load-test a gateway
//	edge-agent stats [--url URL]                  print a running gateway's stats
//	edge-agent health [--url URL] [--live]        exit 0 when the gateway is ready (container health check)
//	edge-agent version                            also --version
//	edge-agent help [COMMAND]                     also -h, --help
//
// A wrong command line (an unknown command, a stray argument, an unknown
// flag) exits 2 with a usage message and starts nothing.
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/edge-agent/edge-agent/internal/app"
	"github.com/edge-agent/edge-agent/internal/bench"
	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/gctune"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usage is the answer to --help, and what a wrong command line points at.
const usage = `Usage:
  edge-agent [serve] [--config FILE] [--demo] [--demo-latency D]
                                  serve the gateway (HOST:PORT, default :8080)
  edge-agent simulate [flags]     run the simulated provider as a standalone upstream
  edge-agent bench [flags]        load-test a gateway
  edge-agent stats [--url URL]    print a running gateway's /admin/stats
  edge-agent health [--live]      exit 0 when the local gateway is ready (live), 1 if not:
                                  the container health check (no shell or curl needed)
  edge-agent version              print the version (also --version)
  edge-agent help [COMMAND]       this text, or a command's flags (also -h, --help)

Configuration comes from environment variables and an optional YAML file
(--config); every variable is in the configuration table of the README
(https://github.com/edge-agent/edge-agent#configuration) and in
docs/operations.md.
`

// usageError is a wrong command line: main exits 2. shown is set when the
// flag package has already printed the error and the flags.
type usageError struct {
	err   error
	shown bool
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func badUsage(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// flagError turns a flag parsing error into a usage error (the flag
// package has printed it, with the flags); -h is no error.
func flagError(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &usageError{err: err, shown: true}
}

// exitCode reports err on stderr and returns the process's exit code: 0
// for success and help, 2 for a wrong command line, 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	var ue *usageError
	var be *bench.UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		if !ue.shown {
			fmt.Fprintf(stderr, "edge-agent: %v\n\n%s", err, usage)
		}
		return 2
	case errors.As(err, &be):
		return 2 // bench printed the error and its flags
	}
	fmt.Fprintln(stderr, "edge-agent:", err)
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		if len(args) > 0 {
			switch args[0] {
			case "-h", "-help", "--help":
				fmt.Fprint(stdout, usage)
				return nil
			case "-version", "--version":
				return version(args[1:], stdout)
			}
		}
		return serve(ctx, args, stderr)
	case "simulate":
		return simulate(ctx, args, stderr)
	case "bench":
		return bench.Main(ctx, args, stdout, stderr)
	case "stats":
		return stats(ctx, args, stdout, stderr)
	case "health":
		return health(ctx, args, os.Getenv, stdout, stderr)
	case "version":
		return version(args, stdout)
	case "help":
		// "help bench" is "bench -h"; "help", "help -h" and anything else
		// print the overview.
		if len(args) > 0 {
			switch args[0] {
			case "serve", "simulate", "bench", "stats", "health":
				return run(ctx, []string{args[0], "-h"}, stdout, stderr)
			}
		}
		fmt.Fprint(stdout, usage)
		return nil
	}
	return badUsage("unknown command %q", cmd)
}

func version(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return badUsage("version takes no arguments, got %q", args[0])
	}
	fmt.Fprintln(stdout, "edge-agent", app.Version)
	return nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("edge-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "YAML configuration file")
	demo := fs.Bool("demo", false, "serve a built-in simulated provider (no keys, no network)")
	demoLatency := fs.Duration("demo-latency", 1200*time.Millisecond, "simulated provider time to first token in --demo mode")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\nFlags of serve:\n", usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return badUsage("unexpected argument %q (serve takes only flags)", fs.Arg(0))
	}
	cfg, err := config.Load(*cfgPath, os.Getenv)
	if err != nil {
		return err
	}
	logger, err := telemetry.NewBufferedLogger(os.Stderr, cfg.LogFormat, cfg.LogLevel, cfg.LogFlushInterval.D())
	if err != nil {
		return err
	}
	defer logger.Close() // writes the lines still batched in memory
	// The OpenTelemetry SDK reports exporter errors through a process-wide
	// handler; without this one they are plain text in the JSON stream.
	otel.SetErrorHandler(telemetry.ExportErrorHandler(logger.Logger))
	if before, after, err := app.RaiseFileLimit(); err != nil {
		logger.Warn("file-descriptor limit not raised; unset concurrency caps follow the current one", "error", err)
	} else {
		logger.Info("file-descriptor limit", "soft_before", before, "soft", after)
	}
	if l, err := gctune.LimitFromCgroup("/sys/fs/cgroup"); err != nil {
		logger.Warn("cgroup memory limit not read; Go memory limit left alone", "error", err)
	} else if l > 0 {
		logger.Info("Go memory limit set to 90% of the cgroup's", "bytes", l)
	}
	defer gctune.Start(cfg.GCMinHeap).Stop()
	demoBase := ""
	if *demo {
		base, stopDemo, err := startDemoProvider(*demoLatency)
		if err != nil {
			return err
		}
		// Stopped once the gateway has returned: streams still being
		// served during the drain keep their upstream.
		defer stopDemo()
		demoBase = base
		config.UseDemoProvider(&cfg, base)
		logger.Info("demo mode: OpenAI and Anthropic models are served by the built-in simulated provider", "upstream", base)
	}
	a, err := app.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	// SIGHUP, or a change of the --config file, reloads providers, models,
	// keys and limits; an invalid file keeps the running configuration.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	load := func() (config.Config, error) {
		c, err := config.Load(*cfgPath, os.Getenv)
		if err == nil && demoBase != "" {
			config.UseDemoProvider(&c, demoBase)
		}
		return c, err
	}
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		a.WatchConfig(wctx, *cfgPath, 2*time.Second, hup, load)
	}()
	err = a.Run(ctx)
	stopWatch()
	<-watched
	return err
}

// startDemoProvider serves the simulated provider on a loopback port, with
// the latency of a real one (500-2000 ms), until stop is called.
func startDemoProvider(ttft time.Duration) (base string, stop func(), err error) {
	ln, err := app.ListenLoopback()
	if err != nil {
		return "", nil, err
	}
	sim := simulated.New(simulated.Options{TTFT: ttft, Jitter: ttft * 6 / 10, ChunkDelay: 15 * time.Millisecond})
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return "http://" + ln.Addr().String(), func() {
		_ = srv.Close()
		<-done
	}, nil
}

func simulate(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("edge-agent simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9100", "listen address")
	latency := fs.Duration("latency", 0, "time to first token")
	jitter := fs.Duration("jitter", 0, "uniform +/- jitter on the latency")
	chunk := fs.Duration("chunk-delay", 0, "delay between stream chunks")
	e500 := fs.Float64("error-rate-500", 0, "fraction of requests answered 500")
	e429 := fs.Float64("error-rate-429", 0, "fraction of requests answered 429")
	words := fs.Int("words", 0, "answer length in words (0: default)")
	key := fs.String("api-key", "", "require this key (Bearer or x-api-key)")
	headers := http.Header{}
	fs.Func("header", `add "Name: value" to every chat answer (repeatable)`, func(v string) error {
		name, value, ok := strings.Cut(v, ":")
		if name = strings.TrimSpace(name); !ok || name == "" {
			return fmt.Errorf("want \"Name: value\", got %q", v)
		}
		headers.Add(name, strings.TrimSpace(value))
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return badUsage("unexpected argument %q (simulate takes only flags)", fs.Arg(0))
	}
	logger, err := telemetry.NewLogger(stderr, "text", "info")
	if err != nil {
		return err
	}
	return simulated.Run(ctx, *addr, simulated.Options{TTFT: *latency, Jitter: *jitter, ChunkDelay: *chunk,
		ErrorRate500: *e500, ErrorRate429: *e429, Words: *words, APIKey: *key, Headers: headers}, logger.Logger)
}

// health asks the gateway on this host whether it is ready (or, with
// --live, alive): the container health check of a distroless image, which
// has no shell and no curl. The default URL is the one the gateway listens
// on given the same environment: 127.0.0.1:$PORT, https when TLS is on
// (the certificate is not checked: it names the service, not 127.0.0.1,
// and the connection never leaves the host).
func health(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("edge-agent health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scheme, port := "http", cmp.Or(getenv("PORT"), "8080")
	if getenv("TLS_CERT_PATH") != "" {
		scheme = "https"
	}
	url := fs.String("url", scheme+"://127.0.0.1:"+port, "gateway base URL (default from $PORT and $TLS_CERT_PATH)")
	live := fs.Bool("live", false, "check liveness (/health/live) instead of readiness (/health/ready)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return badUsage("unexpected argument %q (health takes only flags)", fs.Arg(0))
	}
	path := "/health/ready"
	if *live {
		path = "/health/live"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(*url, "/")+path, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // loopback health check, see above
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %s: %s", path, resp.Status, bytes.TrimSpace(body))
	}
	_, err = stdout.Write(body)
	return err
}

func stats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("edge-agent stats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "gateway base URL")
	key := fs.String("admin-key", os.Getenv("ADMIN_API_KEY"), "admin key (default $ADMIN_API_KEY)")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return badUsage("unexpected argument %q (stats takes only flags)", fs.Arg(0))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url+"/admin/stats", nil)
	if err != nil {
		return err
	}
	if *key != "" {
		req.Header.Set("Authorization", "Bearer "+*key)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("stats: %s: %s", resp.Status, body)
	}
	_, err = stdout.Write(body)
	return err
}
