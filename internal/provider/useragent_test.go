package provider

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestUpstreamSeesTheGatewaysUserAgent on both clients, unless the caller
// set its own.
func TestUpstreamSeesTheGatewaysUserAgent(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("User-Agent")
	}))
	defer srv.Close()
	tests := []struct {
		name, own, want string
		stdOnly         bool
	}{
		{name: "direct client", want: "edge-agent/1.2.3"},
		{name: "net/http transport", stdOnly: true, want: "edge-agent/1.2.3"},
		{name: "caller's own kept", own: "my-agent/1", want: "my-agent/1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTransport(TransportOptions{StdOnly: tt.stdOnly, UserAgent: "edge-agent/1.2.3"})
			defer tr.CloseIdleConnections()
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
			if tt.own != "" {
				req.Header.Set("User-Agent", tt.own)
			}
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if ua := <-got; ua != tt.want {
				t.Fatalf("upstream saw User-Agent %q, want %q", ua, tt.want)
			}
		})
	}
}
