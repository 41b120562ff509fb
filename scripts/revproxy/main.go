// Command revproxy is a bare net/http/httputil.ReverseProxy, the floor for
// any Go proxy in the streams benchmark (scripts/streams_compare.sh): it
// forwards every request to one upstream and copies the answer back, with
// net/http's defaults except a keep-alive pool large enough for the
// benchmark's concurrency (the default keeps 2 idle connections per host,
// which would make it dial for almost every request).
//
//	revproxy --addr 127.0.0.1:9200 --upstream http://127.0.0.1:9100
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9200", "listen address")
	upstream := flag.String("upstream", "http://127.0.0.1:9100", "upstream base URL")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *upstream); err != nil {
		fmt.Fprintln(os.Stderr, "revproxy:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr, upstream string) error {
	h, err := newProxy(upstream)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newProxy is httputil.ReverseProxy to upstream. Event streams are flushed
// as they arrive (ReverseProxy does so for text/event-stream on its own).
func newProxy(upstream string) (*httputil.ReverseProxy, error) {
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("--upstream: %q is not a URL", upstream)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0 // no bound
	t.MaxIdleConnsPerHost = 1 << 16
	return &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(u) },
		Transport: t,
	}, nil
}
