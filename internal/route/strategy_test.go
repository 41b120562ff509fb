package route

import (
	"strings"
	"testing"
	"time"
)

func strategyGroup(t *testing.T, strategy string, cfg Config, deps ...Deployment) *group {
	t.Helper()
	p := newFake("p", nil)
	for i := range deps {
		deps[i].Provider = p
	}
	cfg.Groups = []ModelGroup{{Name: "m", Strategy: strategy, Deployments: deps}}
	r := mustRouter(t, cfg)
	return r.groups["m"]
}

func picks(g *group, n int) string {
	var out []string
	for range n {
		out = append(out, g.deps[g.pick([]int{0, 1, 2}[:len(g.deps)])].name)
	}
	return strings.Join(out, "")
}

func TestStrategiesPickDeployments(t *testing.T) {
	cases := []struct {
		name     string
		strategy string
		cfg      Config
		deps     []Deployment
		setup    func(g *group)
		want     string
	}{
		{name: "weighted is smooth", strategy: StrategyWeighted,
			deps: []Deployment{{Name: "a", Model: "x", Weight: 5}, {Name: "b", Model: "y"}, {Name: "c", Model: "z"}},
			want: "aabacaa" + "aabacaa"},
		{name: "weighted defaults to equal shares", strategy: "",
			deps: []Deployment{{Name: "a", Model: "x"}, {Name: "b", Model: "y"}, {Name: "c", Model: "z"}},
			want: "abcabc"},
		{name: "priority takes the lowest number and shares among equals", strategy: StrategyPriority,
			deps: []Deployment{{Name: "a", Model: "x", Priority: 2}, {Name: "b", Model: "y", Priority: 1}, {Name: "c", Model: "z", Priority: 1}},
			want: "bcbc"},
		{name: "lowest cost takes the cheapest", strategy: StrategyLowestCost,
			cfg: Config{PriceFunc: func(m string) (float64, bool) {
				p, ok := map[string]float64{"x": 2.5, "y": 0.15}[m]
				return p, ok
			}},
			deps: []Deployment{{Name: "a", Model: "x"}, {Name: "b", Model: "y"}, {Name: "c", Model: "unpriced"}},
			want: "bbb"},
		{name: "least latency takes the fastest", strategy: StrategyLeastLatency,
			cfg:  Config{Rand: func() float64 { return 0.5 }},
			deps: []Deployment{{Name: "a", Model: "x"}, {Name: "b", Model: "y"}, {Name: "c", Model: "z"}},
			setup: func(g *group) {
				g.deps[0].ewma.Store(int64(300 * time.Millisecond))
				g.deps[1].ewma.Store(int64(100 * time.Millisecond))
				g.deps[2].ewma.Store(int64(200 * time.Millisecond))
			},
			want: "bbb"},
		{name: "least latency measures an unmeasured deployment first", strategy: StrategyLeastLatency,
			cfg:  Config{Rand: func() float64 { return 0.5 }},
			deps: []Deployment{{Name: "a", Model: "x"}, {Name: "b", Model: "y"}, {Name: "c", Model: "z"}},
			setup: func(g *group) {
				g.deps[0].ewma.Store(int64(300 * time.Millisecond))
				g.deps[1].ewma.Store(int64(100 * time.Millisecond))
			},
			want: "c"},
		{name: "least latency explores", strategy: StrategyLeastLatency,
			cfg:  Config{Rand: func() float64 { return 0.01 }},
			deps: []Deployment{{Name: "a", Model: "x"}, {Name: "b", Model: "y"}, {Name: "c", Model: "z"}},
			setup: func(g *group) {
				g.deps[0].ewma.Store(int64(300 * time.Millisecond))
				g.deps[1].ewma.Store(int64(100 * time.Millisecond))
				g.deps[2].ewma.Store(int64(200 * time.Millisecond))
			},
			want: "a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := strategyGroup(t, c.strategy, c.cfg, c.deps...)
			if c.setup != nil {
				c.setup(g)
			}
			if got := picks(g, len(c.want)); got != c.want {
				t.Fatalf("picks %q, want %q", got, c.want)
			}
		})
	}
}

func TestLeastLatencyLearnsFromAnswers(t *testing.T) {
	g := strategyGroup(t, StrategyLeastLatency, Config{Rand: func() float64 { return 0.5 }},
		Deployment{Name: "a", Model: "x"}, Deployment{Name: "b", Model: "y"})
	now := time.Now()
	g.deps[0].record(now, outcomeSuccess, false, 50*time.Millisecond, nil)
	g.deps[1].record(now, outcomeSuccess, false, 80*time.Millisecond, nil)
	for range 10 {
		g.deps[0].record(now, outcomeSuccess, false, 400*time.Millisecond, nil)
	}
	if got := picks(g, 1); got != "b" {
		t.Fatalf("picked %q after a got slow, want b", got)
	}
}
