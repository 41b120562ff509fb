package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"
)

func completedRecord() *Record {
	return &Record{
		RequestID: "req-123", Provider: "openai", Model: "gpt-4o", Cache: CacheMiss, Status: 200, Stream: true,
		TotalLatency: 12_400 * time.Microsecond, ProviderLatency: 11_600 * time.Microsecond, TTFT: 3 * time.Millisecond,
		PromptTokens: 1200, CompletionTokens: 300, CostUSD: 0.006, CostKnown: true,
	}
}

// logPaths are the two ways to write the request line; both must produce
// the same output.
var logPaths = map[string]func(*Logger, *Record){
	"fast": func(l *Logger, r *Record) { l.LogRequest(context.Background(), r) },
	"slog": func(l *Logger, r *Record) { LogRequest(context.Background(), l.Logger, r) },
}

func TestRequestLogLineIsOneJSONObjectWithIntegerLatencies(t *testing.T) {
	for name, logRequest := range logPaths {
		t.Run(name, func(t *testing.T) { testJSONLine(t, logRequest) })
	}
}

func testJSONLine(t *testing.T, logRequest func(*Logger, *Record)) {
	var buf bytes.Buffer
	logger, err := NewLogger(&buf, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	logRequest(logger, completedRecord())
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one line, got %d: %q", len(lines), buf.String())
	}
	var got map[string]any
	dec := json.NewDecoder(strings.NewReader(lines[0]))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("line is not JSON: %v\n%s", err, lines[0])
	}
	want := map[string]string{
		"msg": RequestCompleted, "level": "INFO", "request_id": "req-123", "model": "gpt-4o", "provider": "openai",
		"cache": "miss", "status": "200", "total_latency_ms": "12", "total_latency_us": "12400",
		"provider_latency_ms": "12", "provider_latency_us": "11600", "overhead_ms": "1", "overhead_us": "800",
		"prompt_tokens": "1200", "completion_tokens": "300", "cost_usd": "0.006", "ttft_ms": "3", "stream": "true",
	}
	for k, v := range want {
		if s := stringify(got[k]); s != v {
			t.Errorf("%s = %q; want %q", k, s, v)
		}
	}
}

func stringify(v any) string {
	switch v := v.(type) {
	case json.Number:
		return v.String()
	case string:
		return v
	case bool:
		if v {
			return "true"
		}
		return "false"
	case nil:
		return "null"
	}
	return "?"
}

func TestUnknownCostIsLoggedAsNullInBothFormats(t *testing.T) {
	r := completedRecord()
	r.CostKnown, r.CostUSD = false, 0
	for format, want := range map[string]string{"json": `"cost_usd":null`, "text": " cost_usd=null"} {
		for name, logRequest := range logPaths {
			t.Run(format+"/"+name, func(t *testing.T) {
				var buf bytes.Buffer
				logger, _ := NewLogger(&buf, format, "")
				logRequest(logger, r)
				if !strings.Contains(buf.String(), want) {
					t.Fatalf("no %q in %s", want, buf.String())
				}
				if format == "json" {
					var got map[string]any
					if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
						t.Fatal(err)
					}
					if v, ok := got["cost_usd"]; !ok || v != nil {
						t.Fatalf("cost_usd = %v (present %v); want null", v, ok)
					}
				}
			})
		}
	}
}

func TestTextLogWorksWithTheGuidesGrep(t *testing.T) {
	for name, logRequest := range logPaths {
		t.Run(name, func(t *testing.T) { testGuideGrep(t, logRequest) })
	}
}

func testGuideGrep(t *testing.T, logRequest func(*Logger, *Record)) {
	var buf bytes.Buffer
	logger, err := NewLogger(&buf, "text", "debug")
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("Server started", "port", 8080)
	for _, ms := range []int{7, 12, 250} {
		r := completedRecord()
		r.TotalLatency = time.Duration(ms)*time.Millisecond + 300*time.Microsecond
		logRequest(logger, r)
	}
	// grep "Request completed" logs.txt | grep -oP 'total_latency_ms=\K\d+'
	re := regexp.MustCompile(`total_latency_ms=(\d+)`)
	var got []string
	for line := range strings.Lines(buf.String()) {
		if !strings.Contains(line, RequestCompleted) {
			continue
		}
		for _, m := range re.FindAllStringSubmatch(line, -1) {
			got = append(got, m[1])
		}
	}
	if strings.Join(got, ",") != "7,12,250" {
		t.Fatalf("extracted %v from:\n%s", got, buf.String())
	}
	if !strings.Contains(buf.String(), `msg="Request completed"`) || !strings.Contains(buf.String(), " cache=miss ") {
		t.Fatalf("text line lacks key=value fields:\n%s", buf.String())
	}
}

func TestSecretsAreRedactedWhateverTheFormat(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			base, _ := NewLogger(&buf, format, "debug")
			logger := base.With("X-API-Key", "abc123supersecret")
			logger.Info("upstream call",
				"api_key", "sk-proj-abcdefghijklmnop",
				"Authorization", "Bearer abcdefghijklmnop",
				"token", "t0k3n-value",
				"note", "sk-live-abcdefghijklmnop",
				"header", "Bearer qwertyuiopasdf",
				slog.Group("upstream", "client_secret", "s3cr3t-value", "password", "hunter2"),
				"prompt_tokens", 5, "completion_tokens", 7, "request_id", "req-1",
			)
			out := buf.String()
			for _, secret := range []string{"abc123supersecret", "abcdefghijklmnop", "t0k3n-value", "qwertyuiopasdf", "s3cr3t-value", "hunter2"} {
				if strings.Contains(out, secret) {
					t.Errorf("secret %q logged: %s", secret, out)
				}
			}
			if strings.Count(out, Redacted) != 8 {
				t.Errorf("want 8 redactions: %s", out)
			}
			for _, kept := range []string{"prompt_tokens", "completion_tokens", "req-1"} {
				if !strings.Contains(out, kept) {
					t.Errorf("%s was lost: %s", kept, out)
				}
			}
		})
	}
}

func TestSensitiveKeyMatchesSecretNamesOnly(t *testing.T) {
	for key, want := range map[string]bool{
		"api_key": true, "APIKey": true, "x-api-key": true, "authorization": true, "Proxy-Authorization": true,
		"token": true, "access_token": true, "refresh_token": true, "client_secret": true, "password": true,
		"cookie": true, "set-cookie": true, "credentials": true,
		"prompt_tokens": false, "completion_tokens": false, "total_tokens": false, "cached_tokens": false,
		"request_id": false, "model": false, "cache": false, "status": false, "total_latency_ms": false,
		"cost_usd": false, "msg": false, "time": false, "level": false, "stream": false, "saved_usd": false,
	} {
		if got := sensitiveKey(key); got != want {
			t.Errorf("sensitiveKey(%q) = %v; want %v", key, got, want)
		}
	}
}

func TestLogRequestDoesNothingWhenInfoIsDisabled(t *testing.T) {
	var buf bytes.Buffer
	logger, err := NewLogger(&buf, "json", "WARN")
	if err != nil {
		t.Fatal(err)
	}
	r := completedRecord()
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() { LogRequest(ctx, logger.Logger, r); logger.LogRequest(ctx, r) }); n != 0 {
		t.Errorf("LogRequest allocates %v times with info disabled", n)
	}
	if buf.Len() != 0 {
		t.Fatalf("logged above level: %s", buf.String())
	}
}

func TestNewLoggerRejectsUnknownFormatAndLevel(t *testing.T) {
	if _, err := NewLogger(&bytes.Buffer{}, "xml", "info"); err == nil || !strings.Contains(err.Error(), "xml") {
		t.Errorf("format: err = %v", err)
	}
	if _, err := NewLogger(&bytes.Buffer{}, "json", "verbose"); err == nil || !strings.Contains(err.Error(), "verbose") {
		t.Errorf("level: err = %v", err)
	}
	for in, want := range map[string]slog.Level{"": slog.LevelInfo, "Debug": slog.LevelDebug, "warning": slog.LevelWarn, "error": slog.LevelError} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v", in, got, err)
		}
	}
}

func TestFastRequestLineMatchesSlogByteForByte(t *testing.T) {
	records := []*Record{
		completedRecord(),
		{RequestID: "", Model: "", Status: 0},
		{RequestID: `we "quote" = and \ back\slash`, Model: "mödel\u2028x\x7f", Provider: "a\tb\nc\x01", Cache: CacheL1,
			Status: 200, CostKnown: true, CostUSD: 7.5e-05, SavedUSD: 1e-7, CachedTokens: 3, CostEstimated: true,
			ErrorCode: "bad\xffutf8"},
		{RequestID: "sk-abcdefghijklmnop", Cache: CacheBypass, Status: 502, CostKnown: true, CostUSD: 12,
			ErrorCode: "upstream_error", TotalLatency: 1500 * time.Microsecond},
		{RequestID: "x", CostKnown: true, CostUSD: 1e21, Stream: true, TTFT: time.Nanosecond, SavedUSD: 123456.789},
	}
	timeRE := regexp.MustCompile(`^(\{"time":"[^"]*"|time=\S+)`)
	for _, format := range []string{"json", "text"} {
		for i, r := range records {
			var fast, viaSlog bytes.Buffer
			fl, _ := NewLogger(&fast, format, "info")
			sl, _ := NewLogger(&viaSlog, format, "info")
			fl.LogRequest(context.Background(), r)
			LogRequest(context.Background(), sl.Logger, r)
			f, s := timeRE.ReplaceAllString(fast.String(), "T"), timeRE.ReplaceAllString(viaSlog.String(), "T")
			if f != s {
				t.Errorf("%s record %d:\nfast %s\nslog %s", format, i, f, s)
			}
			if !timeRE.MatchString(fast.String()) {
				t.Errorf("%s record %d: no leading time: %s", format, i, fast.String())
			}
		}
	}
}
