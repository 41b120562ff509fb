package app_test

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/edge-agent/edge-agent/internal/app"
	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/telemetry"
)

// otlpReceiver is an in-process OTLP/HTTP trace receiver: what a collector
// would get from the gateway.
type otlpReceiver struct {
	mu      sync.Mutex
	spans   []*tracepb.Span
	metrics []*metricpb.Metric
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want protobuf", http.StatusBadRequest)
		return
	}
	if r.URL.Path == "/v1/metrics" {
		b, err := io.ReadAll(r.Body)
		var req colmetrics.ExportMetricsServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		o.mu.Lock()
		for _, rm := range req.GetResourceMetrics() {
			for _, sm := range rm.GetScopeMetrics() {
				o.metrics = append(o.metrics, sm.GetMetrics()...)
			}
		}
		o.mu.Unlock()
		out, _ := proto.Marshal(&colmetrics.ExportMetricsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
		return
	}
	if r.URL.Path != "/v1/traces" {
		http.Error(w, "unknown path", http.StatusNotFound)
		return
	}
	b, err := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			o.spans = append(o.spans, ss.GetSpans()...)
		}
	}
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

func attrsOf(s *tracepb.Span) map[string]string {
	m := map[string]string{}
	for _, kv := range s.GetAttributes() {
		v := kv.GetValue()
		switch {
		case v.GetStringValue() != "":
			m[kv.GetKey()] = v.GetStringValue()
		default:
			m[kv.GetKey()] = strings.TrimSpace(strings.TrimPrefix(v.String(), "int_value:"))
		}
	}
	return m
}

// TestSpansFollowTheGenAIConventionsAtAnOTLPReceiver exports over real
// OTLP/HTTP and checks the span tree a collector receives: the request's
// server span, its GenAI "chat {model}" span, one child per upstream
// attempt (retries visible, failed ones with error status and error.type),
// the conventions' attribute names, and a stream whose attempt span ends
// with the stream.
func TestSpansFollowTheGenAIConventionsAtAnOTLPReceiver(t *testing.T) {
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")

	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	cfg.Cache.Enabled = false
	cfg.Routing.RetryBaseBackoff, cfg.Routing.RetryMaxBackoff = config.Duration(1e6), config.Duration(2e6)
	logger, err := telemetry.NewLogger(io.Discard, "json", "error")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	if resp, body := post(t, srv.URL, chat("gpt-4o-mini", "hello")); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if resp, body := post(t, srv.URL, chat("gpt-4o-mini", "SIM_ERROR_500")); resp.StatusCode < 500 {
		t.Fatalf("SIM_ERROR_500: %d %s", resp.StatusCode, body)
	}
	if resp, body := post(t, srv.URL, chat("gpt-4o-mini", "stream please", `"stream":true`)); resp.StatusCode != 200 ||
		!strings.Contains(string(body), "[DONE]") {
		t.Fatalf("stream: %d %s", resp.StatusCode, body)
	}
	srv.Close()
	a.Close() // flushes the batch to the receiver

	recv.mu.Lock()
	spans := slices.Clone(recv.spans)
	recv.mu.Unlock()
	byID := map[string]*tracepb.Span{}
	for _, sp := range spans {
		byID[string(sp.GetSpanId())] = sp
	}
	type tree struct {
		root  *tracepb.Span
		call  *tracepb.Span
		tries []*tracepb.Span
	}
	var trees []tree
	for _, root := range spans {
		if root.GetName() != "POST /v1/chat/completions" {
			continue
		}
		tr := tree{root: root}
		for _, sp := range spans {
			if string(sp.GetParentSpanId()) == string(root.GetSpanId()) && sp.GetName() == "chat gpt-4o-mini" {
				tr.call = sp
			}
		}
		if tr.call == nil {
			t.Fatalf("request span without a \"chat gpt-4o-mini\" child; spans: %v", names(spans))
		}
		for _, sp := range spans {
			if string(sp.GetParentSpanId()) == string(tr.call.GetSpanId()) {
				tr.tries = append(tr.tries, sp)
			}
		}
		trees = append(trees, tr)
	}
	if len(trees) != 3 {
		t.Fatalf("%d request trees, want 3; spans: %v", len(trees), names(spans))
	}
	for i, tr := range trees {
		ra, ca := attrsOf(tr.root), attrsOf(tr.call)
		if tr.root.GetKind() != tracepb.Span_SPAN_KIND_SERVER || ra["http.route"] != "/v1/chat/completions" || ra["http.request.method"] != "POST" {
			t.Errorf("request %d: kind %v attributes %v", i, tr.root.GetKind(), ra)
		}
		if tr.call.GetKind() != tracepb.Span_SPAN_KIND_CLIENT || ca["gen_ai.operation.name"] != "chat" || ca["gen_ai.request.model"] != "gpt-4o-mini" {
			t.Errorf("request %d: chat span kind %v attributes %v", i, tr.call.GetKind(), ca)
		}
		for _, try := range tr.tries {
			ta := attrsOf(try)
			if try.GetKind() != tracepb.Span_SPAN_KIND_CLIENT || ta["gen_ai.provider.name"] != "openai" || ta["gen_ai.operation.name"] != "chat" ||
				ta["gen_ai.request.model"] != "gpt-4o-mini" || ta["edge_agent.deployment"] == "" {
				t.Errorf("request %d: attempt span kind %v attributes %v", i, try.GetKind(), ta)
			}
		}
	}
	ok, failed, stream := trees[0], trees[1], trees[2]
	if len(ok.tries) != 1 || attrsOf(ok.tries[0])["edge_agent.attempt.outcome"] != "2xx" || ok.root.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("answered request: %d attempts %v", len(ok.tries), ok.tries)
	}
	if ra := attrsOf(ok.root); ra["gen_ai.usage.input_tokens"] == "" || ra["gen_ai.usage.output_tokens"] == "" || ra["gen_ai.response.model"] == "" ||
		!strings.Contains(ra["gen_ai.response.finish_reasons"], `"stop"`) {
		t.Errorf("answered request: usage attributes missing: %v", ra)
	}
	if len(failed.tries) != 3 {
		t.Errorf("failing request: %d attempt spans, want 3 (retries visible)", len(failed.tries))
	}
	for _, try := range failed.tries {
		if try.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR || attrsOf(try)["error.type"] != "5xx" {
			t.Errorf("failed attempt: status %v attributes %v", try.GetStatus(), attrsOf(try))
		}
	}
	if failed.root.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR || attrsOf(failed.root)["error.type"] == "" {
		t.Errorf("failed request span: status %v attributes %v", failed.root.GetStatus(), attrsOf(failed.root))
	}
	if len(stream.tries) != 1 || attrsOf(stream.tries[0])["edge_agent.attempt.outcome"] != "2xx" {
		t.Fatalf("stream: attempts %v", stream.tries)
	}
	// The stream's attempt span covers the whole generation, not only the
	// first chunk: it ends after the gateway's chat span would have.
	if stream.tries[0].GetEndTimeUnixNano() < stream.call.GetStartTimeUnixNano() ||
		stream.tries[0].GetEndTimeUnixNano() > stream.root.GetEndTimeUnixNano() {
		t.Errorf("stream attempt span [%d, %d] not within its request [%d, %d]", stream.tries[0].GetStartTimeUnixNano(),
			stream.tries[0].GetEndTimeUnixNano(), stream.root.GetStartTimeUnixNano(), stream.root.GetEndTimeUnixNano())
	}
}

// TestGenAIClientMetricsReachTheOTLPReceiver: gen_ai.client.operation.duration
// and gen_ai.client.token.usage (input and output) with the conventions'
// attributes, exported over OTLP beside the Prometheus names.
func TestGenAIClientMetricsReachTheOTLPReceiver(t *testing.T) {
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	cfg.Cache.Enabled = false
	logger, err := telemetry.NewLogger(io.Discard, "json", "error")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	if resp, body := post(t, srv.URL, chat("gpt-4o-mini", "count my tokens")); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	emb, err := http.Post(srv.URL+"/v1/embeddings", "application/json", strings.NewReader(`{"model":"text-embedding-3-small","input":"count me too"}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, emb.Body)
	emb.Body.Close()
	if emb.StatusCode != 200 {
		t.Fatalf("embeddings: %d", emb.StatusCode)
	}
	srv.Close()
	a.Close() // the meter provider's shutdown exports what it holds

	recv.mu.Lock()
	defer recv.mu.Unlock()
	got := map[string]*metricpb.Metric{}
	for _, m := range recv.metrics {
		got[m.GetName()] = m
	}
	dur, tok := got["gen_ai.client.operation.duration"], got["gen_ai.client.token.usage"]
	if dur == nil || tok == nil {
		t.Fatalf("metrics received: %v", slices.Collect(maps.Keys(got)))
	}
	kv := func(attrs []*commonpb.KeyValue) map[string]string {
		m := map[string]string{}
		for _, a := range attrs {
			m[a.GetKey()] = a.GetValue().GetStringValue()
		}
		return m
	}
	// One data point per operation: the chat call and the embeddings call
	// (the conventions' "embeddings", not "chat").
	ops := map[string]map[string]string{}
	for _, dp := range dur.GetHistogram().GetDataPoints() {
		a := kv(dp.GetAttributes())
		if dp.GetCount() != 1 {
			t.Errorf("operation duration %v: count %d, want 1", a, dp.GetCount())
		}
		ops[a["gen_ai.operation.name"]] = a
	}
	if dur.GetUnit() != "s" || len(ops) != 2 {
		t.Errorf("operation duration: %v", dur)
	}
	if a := ops["chat"]; a["gen_ai.request.model"] != "gpt-4o-mini" || a["gen_ai.provider.name"] != "openai" {
		t.Errorf("chat operation duration attributes %v", a)
	}
	if a := ops["embeddings"]; a["gen_ai.request.model"] != "text-embedding-3-small" || a["gen_ai.provider.name"] != "openai" {
		t.Errorf("embeddings operation duration attributes %v", a)
	}
	types := map[string]float64{}
	for _, dp := range tok.GetHistogram().GetDataPoints() {
		if a := kv(dp.GetAttributes()); a["gen_ai.operation.name"] == "chat" {
			types[a["gen_ai.token.type"]] = dp.GetSum()
		}
	}
	if types["input"] <= 0 || types["output"] <= 0 {
		t.Errorf("token usage by type %v, want input and output", types)
	}
}

func names(spans []*tracepb.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.GetName())
	}
	return out
}
