package simulated

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServeAnswersUntilTheContextEnds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- Serve(ctx, ln, New(Options{}), nil) }()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Post("http://"+ln.Addr().String()+"/v1/chat/completions", "application/json",
		strings.NewReader(openAIReq("are you there?", "")))
	if err != nil {
		t.Fatal(err)
	}
	mustJSON(t, resp, 200)
	resp.Body.Close()

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancellation")
	}
}

func TestRunReportsAListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = Run(t.Context(), ln.Addr().String(), Options{}, nil)
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("Run on a busy address: %v", err)
	}
}

func TestHeadersOptionAddsHeadersToEveryChatAnswer(t *testing.T) {
	_, ts := start(t, Options{Headers: http.Header{"x-cache-status": {"HIT"}, "X-Edge-Provider": {"openai"}}})
	for _, c := range []struct{ path, body string }{
		{"/v1/chat/completions", openAIReq("hello", "")},
		{"/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`},
	} {
		resp := post(t, ts, c.path, c.body)
		_ = readAll(t, resp)
		if resp.StatusCode != 200 || resp.Header.Get("X-Cache-Status") != "HIT" || resp.Header.Get("X-Edge-Provider") != "openai" {
			t.Errorf("%s %s: status %d, headers %v", c.path, c.body, resp.StatusCode, resp.Header)
		}
	}
	_, plain := start(t, Options{})
	if resp := post(t, plain, "/v1/chat/completions", openAIReq("hello", "")); resp.Header.Get("X-Cache-Status") != "" {
		t.Errorf("headers without the option: %v", resp.Header)
	}
}
