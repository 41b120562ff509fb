package telemetry

import (
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestDeployFilesOnlyUseExportedMetrics keeps the dashboard and alert rules
// honest: every llm_edge_ name they mention must be one the gateway exports.
func TestDeployFilesOnlyUseExportedMetrics(t *testing.T) {
	m := NewMetrics(MetricsOptions{
		Providers:       []string{"openai"},
		L1Stats:         func() (int64, int64) { return 1, 1 },
		L2Stats:         func() (int64, int64) { return 1, 1 },
		L2Up:            func() bool { return true },
		AttemptOutcomes: []string{"2xx"},
	})
	// Vectors appear in a scrape only once they have a series.
	m.ObserveRequest(&Record{Provider: "openai", Model: "gpt-4o", Cache: CacheMiss, Status: 200, Stream: true,
		TotalLatency: time.Second, ProviderLatency: time.Second, TTFT: time.Millisecond,
		PromptTokens: 1, CompletionTokens: 1, CostUSD: 1, CostKnown: true})
	m.ObserveRequest(&Record{Provider: "openai", Model: "gpt-4o", Cache: CacheL1, Status: 200, SavedUSD: 1})
	m.UpstreamError("openai", "500")
	m.BreakerState("openai", 0)
	m.Fallback()
	m.CacheError("l2", "get")

	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, mf := range mfs {
		exported[mf.GetName()] = true
		if mf.GetType().String() == "HISTOGRAM" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				exported[mf.GetName()+suffix] = true
			}
		}
	}

	nameRE := regexp.MustCompile(`llm_edge_[a-z0-9_]+`)
	used := map[string][]string{}
	root := filepath.Join("..", "..", "deploy")
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "templates" {
				return filepath.SkipDir // Helm templates; deploy/chartcheck renders and checks them
			}
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checkParses(t, path, data)
		for _, name := range nameRE.FindAllString(string(data), -1) {
			used[name] = append(used[name], path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(used) == 0 {
		t.Fatalf("no llm_edge_ metric names found under %s", root)
	}
	for _, name := range slices.Sorted(maps.Keys(used)) {
		if !exported[name] {
			t.Errorf("%s is used in %v but not exported", name, slices.Compact(used[name]))
		}
	}
	// The guide's names must all be charted.
	for _, want := range []string{"llm_edge_cache_hits_total", "llm_edge_cache_misses_total",
		"llm_edge_request_duration_ms_bucket", "llm_edge_tokens_total", "llm_edge_cost_usd_total",
		"llm_edge_provider_duration_ms_bucket", "llm_edge_time_to_first_token_ms_bucket", "llm_edge_cache_l2_up",
		"llm_edge_upstream_attempts_total", "llm_edge_retries_total", "llm_edge_fallbacks_total",
		"llm_edge_circuit_breaker_state", "llm_edge_build_info"} {
		if len(used[want]) == 0 {
			t.Errorf("deploy/ never uses %s", want)
		}
	}
}

func checkParses(t *testing.T, path string, data []byte) {
	t.Helper()
	var v any
	switch {
	case strings.HasSuffix(path, ".json"):
		if err := json.Unmarshal(data, &v); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	case strings.HasSuffix(path, ".yml"), strings.HasSuffix(path, ".yaml"):
		if err := yaml.Unmarshal(data, &v); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}

// TestDashboardImportsAndChartsWhatOperatorsAsk: __inputs and __requires
// for Grafana's import, every panel on the datasource variable, and
// panels for hit rate by provider and model, retries, fallbacks, breakers
// and upstream attempt outcomes.
func TestDashboardImportsAndChartsWhatOperatorsAsk(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "edge-agent-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Inputs   []struct{ Name, Type, PluginID string } `json:"__inputs"`
		Requires []struct{ Type, ID string }             `json:"__requires"`
		Panels   []struct {
			Title      string
			Datasource struct{ UID string }
			Targets    []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Inputs) == 0 || d.Inputs[0].Name != "DS_PROMETHEUS" {
		t.Errorf("__inputs %+v: want DS_PROMETHEUS", d.Inputs)
	}
	req := map[string]bool{}
	for _, r := range d.Requires {
		req[r.Type+"/"+r.ID] = true
	}
	for _, want := range []string{"grafana/grafana", "datasource/prometheus", "panel/timeseries", "panel/stat"} {
		if !req[want] {
			t.Errorf("__requires lacks %s", want)
		}
	}
	var exprs []string
	for _, p := range d.Panels {
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q uses data source %q, not the variable", p.Title, p.Datasource.UID)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	all := strings.Join(exprs, "\n")
	for _, want := range []string{
		"sum by (provider, model) (rate(llm_edge_cache_hits_total",
		"llm_edge_retries_total", "llm_edge_fallbacks_total", "llm_edge_circuit_breaker_state",
		"sum by (provider, outcome) (rate(llm_edge_upstream_attempts_total", `up{job=~".*edge-agent.*"}`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no panel charts %s", want)
		}
	}
}
