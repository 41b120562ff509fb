package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/app"
	"github.com/edge-agent/edge-agent/internal/server"
	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

// TestDemoServesTheGuidesFirstRequest runs the README's first command in
// process: `edge-agent --demo` must answer the guide's curl with no keys and
// no Redis, then serve the repeat from L1, then shut down cleanly.
func TestDemoServesTheGuidesFirstRequest(t *testing.T) {
	port := redistest.FreePort(t)
	t.Setenv("PORT", strconv.Itoa(port))
	t.Setenv("HOST", "127.0.0.1")
	mport := redistest.FreePort(t)
	for mport == port {
		mport = redistest.FreePort(t)
	}
	t.Setenv("METRICS_PORT", strconv.Itoa(mport))
	t.Setenv("OPENAI_API_KEY", "")
	t.Setenv("REDIS_URL", "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stderr bytes.Buffer
	go func() { done <- run(ctx, []string{"--demo", "--demo-latency", "20ms"}, &bytes.Buffer{}, &stderr) }()

	base := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	body := `{"model": "gpt-4", "messages": [{"role": "user", "content": "What is 2+2?"}]}`
	for i, want := range []string{"MISS", "HIT"} {
		resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Cache-Status") != want {
			t.Fatalf("request %d: status %d cache %q, want 200 %s", i, resp.StatusCode, resp.Header.Get("X-Cache-Status"), want)
		}
	}
	// The metrics listener on its own port answers with the same security
	// headers as the main one.
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(mport) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mbody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(mbody), "llm_edge_requests_total") ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("metrics port: status %d, headers %v", resp.StatusCode, resp.Header)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not shut down")
	}
}

func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "edge-agent ") {
		t.Fatalf("got %q", out.String())
	}
}

func TestStatsCommandPrintsTheGatewaysStats(t *testing.T) {
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		if r.URL.Path != "/admin/stats" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"requests":3,"cache":{"hit_rate":0.5}}`))
	}))
	defer srv.Close()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"stats", "--url", srv.URL, "--admin-key", "ops"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"hit_rate":0.5`) || gotAuth != "Bearer ops" {
		t.Fatalf("printed %q, auth %q", out.String(), gotAuth)
	}
	if err := run(context.Background(), []string{"stats", "--url", srv.URL + "/nowhere"}, &out, &out); err == nil {
		t.Fatal("a failed stats call must be an error")
	}
}

// TestWrongCommandLinesStartNothingAndExit2 checks that a typo never starts
// a gateway: each of these used to serve on :8080. run must return at once
// (a server would block until the context ends).
func TestWrongCommandLinesStartNothingAndExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"bnech"}, `unknown command "bnech"`},
		{[]string{"serve", "extra"}, `unexpected argument "extra"`},
		{[]string{"--demo", "extra"}, `unexpected argument "extra"`},
		{[]string{"--no-such-flag"}, "flag provided but not defined"},
		{[]string{"simulate", "extra"}, `unexpected argument "extra"`},
		{[]string{"stats", "extra"}, `unexpected argument "extra"`},
		{[]string{"version", "extra"}, "version takes no arguments"},
		{[]string{"bench", "extra"}, `unexpected argument "extra"`},
		{[]string{"bench", "--mix", "random"}, "--mix"},
		{[]string{"bench", "--no-such-flag"}, "flag provided but not defined"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // a server started by mistake would stop at once instead of hanging the test
			var stdout, stderr bytes.Buffer
			err := run(ctx, tc.args, &stdout, &stderr)
			code := exitCode(err, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) || !strings.Contains(strings.ToLower(stderr.String()), "usage") {
				t.Fatalf("exit %d (err %v), stderr:\n%s\nwant exit 2 and usage mentioning %q", code, err, stderr.String(), tc.want)
			}
			if stdout.Len() != 0 {
				t.Fatalf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}

func TestHelpListsTheCommandsAndPointsAtTheConfigurationTable(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"help", "-h"}, {"serve", "--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), args, &stdout, &stderr)
			if code := exitCode(err, &stderr); code != 0 {
				t.Fatalf("exit %d: %v", code, err)
			}
			out := stdout.String() + stderr.String()
			for _, want := range []string{"serve", "simulate", "bench", "stats", "version", "help", "README", "configuration"} {
				if !strings.Contains(out, want) {
					t.Fatalf("help lacks %q:\n%s", want, out)
				}
			}
		})
	}
	// help COMMAND shows that command's flags.
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"help", "bench"}, &stdout, &stderr)
	if exitCode(err, &stderr) != 0 || !strings.Contains(stderr.String(), "--concurrency") {
		t.Fatalf("help bench: %v\n%s", err, stderr.String())
	}
}

func TestVersionFlag(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		var out bytes.Buffer
		err := run(context.Background(), args, &out, &out)
		if exitCode(err, &out) != 0 || out.String() != "edge-agent "+app.Version+"\n" {
			t.Fatalf("%v: %v %q", args, err, out.String())
		}
	}
}

func TestFailuresThatAreNotUsageExit1(t *testing.T) {
	var stderr bytes.Buffer
	if code := exitCode(errors.New("listen tcp :8080: address already in use"), &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "address already in use") || strings.Contains(stderr.String(), "Usage") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// TestBenchExitsNonZeroWhenEveryRequestFailed drives the real command
// against a gateway that refuses everything.
func TestBenchExitsNonZeroWhenEveryRequestFailed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"no"}}`, http.StatusUnauthorized)
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"bench", "--url", srv.URL + "/v1/chat/completions", "-n", "5", "-q"}, &stdout, &stderr)
	if code := exitCode(err, &stderr); code != 1 || !strings.Contains(stderr.String(), "no request succeeded") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// TestHealthCommandExitsZeroOnlyWhenTheGatewayIsReady checks the container
// health check against the server's real health routes: ready is exit 0,
// draining or not ready is exit 1 with the reason, nobody listening is
// exit 1, and the default URL follows $PORT.
func TestHealthCommandExitsZeroOnlyWhenTheGatewayIsReady(t *testing.T) {
	ready := true
	srv := server.New(server.Options{Chat: http.NotFoundHandler(), Ready: func() bool { return ready }})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	port := ts.URL[strings.LastIndexByte(ts.URL, ':')+1:]
	env := func(k string) string {
		if k == "PORT" {
			return port
		}
		return ""
	}
	tests := []struct {
		name     string
		args     []string
		setup    func()
		wantCode int
		wantOut  string
	}{
		{name: "ready", wantCode: 0, wantOut: `"ready"`},
		{name: "live", args: []string{"--live"}, wantCode: 0, wantOut: `"alive"`},
		{name: "no provider", setup: func() { ready = false }, wantCode: 1, wantOut: "no provider is configured"},
		{name: "draining", setup: srv.SetDraining, wantCode: 1, wantOut: "draining"},
		{name: "alive while draining", args: []string{"--live"}, wantCode: 0, wantOut: `"alive"`},
		{name: "nobody listening", args: []string{"--url", "http://127.0.0.1:1"}, wantCode: 1, wantOut: "health:"},
		{name: "stray argument", args: []string{"now"}, wantCode: 2, wantOut: "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			var stdout, stderr bytes.Buffer
			err := health(context.Background(), tt.args, env, &stdout, &stderr)
			code := exitCode(err, &stderr)
			if code != tt.wantCode || !strings.Contains(stdout.String()+stderr.String(), tt.wantOut) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d mentioning %q", code, stdout.String(), stderr.String(), tt.wantCode, tt.wantOut)
			}
		})
	}
}

// TestDemoStreamsInFlightAtShutdownFinish: on SIGTERM in --demo, a stream
// already running still gets every chunk and [DONE]: the built-in provider
// stays up until the gateway has finished, and readiness is 503 meanwhile.
func TestDemoStreamsInFlightAtShutdownFinish(t *testing.T) {
	port := redistest.FreePort(t)
	t.Setenv("PORT", strconv.Itoa(port))
	t.Setenv("HOST", "127.0.0.1")
	t.Setenv("METRICS_PORT", "0")
	t.Setenv("OPENAI_API_KEY", "")
	t.Setenv("REDIS_URL", "")
	t.Setenv("SHUTDOWN_DRAIN_DELAY_SECONDS", "0.3")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--demo", "--demo-latency", "20ms"}, &bytes.Buffer{}, &bytes.Buffer{})
	}()
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"SIM_WORDS_60 tell me a long story"}]}`
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 64)
	if _, err := io.ReadAtLeast(resp.Body, first, 1); err != nil {
		t.Fatalf("first bytes: %v", err)
	}
	cancel() // SIGTERM with the stream half way (60 words at 15 ms a chunk)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || !strings.Contains(string(rest), "data: [DONE]") {
		t.Fatalf("the in-flight stream did not finish: %v; tail %q", err, tail(string(rest), 200))
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not shut down")
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
