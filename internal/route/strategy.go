package route

import (
	"math"
	"sync"
)

// group is a routable model: a model table entry, or a provider's direct
// route (one deployment whose upstream model comes from the Target).
type group struct {
	name      string
	strategy  string
	deps      []*deployment
	fallbacks []string
	direct    bool
	rank      []float64 // per deployment: priority or price; lower first
	rnd       func() float64
	explore   float64

	mu  sync.Mutex
	cur []int // smooth weighted round-robin state
}

func newGroup(cfg *Config, name, strategy string, deps []*deployment, fallbacks []string, direct bool) *group {
	g := &group{name: name, strategy: strategy, deps: deps, fallbacks: fallbacks, direct: direct,
		rank: make([]float64, len(deps)), cur: make([]int, len(deps)), rnd: cfg.Rand, explore: cfg.Exploration}
	for i, d := range deps {
		switch strategy {
		case StrategyPriority:
			g.rank[i] = float64(d.priority)
		case StrategyLowestCost:
			g.rank[i] = math.Inf(1)
			if cfg.PriceFunc != nil {
				if p, ok := cfg.PriceFunc(d.model); ok {
					g.rank[i] = p
				}
			}
		}
	}
	return g
}

// pick chooses among candidate deployment indexes (non-empty) by the
// group's strategy. Priority and lowest-cost keep the best rank and share
// load among equals by weight.
func (g *group) pick(cands []int) int {
	if len(cands) == 1 {
		return cands[0]
	}
	switch g.strategy {
	case StrategyLeastLatency:
		if g.explore > 0 && g.rnd() < g.explore {
			return cands[int(g.rnd()*float64(len(cands)))%len(cands)]
		}
		best, bestLat := cands[0], g.deps[cands[0]].ewma.Load()
		for _, i := range cands[1:] {
			// An unmeasured deployment (0) wins, so each one gets measured.
			if l := g.deps[i].ewma.Load(); l < bestLat {
				best, bestLat = i, l
			}
		}
		return best
	case StrategyPriority, StrategyLowestCost:
		min := math.Inf(1)
		for _, i := range cands {
			min = math.Min(min, g.rank[i])
		}
		n := 0
		for _, i := range cands {
			if g.rank[i] == min || math.IsInf(min, 1) {
				cands[n] = i
				n++
			}
		}
		cands = cands[:n]
		if len(cands) == 1 {
			return cands[0]
		}
	}
	return g.swrr(cands)
}

// swrr is nginx's smooth weighted round-robin over the candidates: each
// gains its weight, the richest is chosen and pays the total.
func (g *group) swrr(cands []int) int {
	g.mu.Lock()
	total, best := 0, -1
	for _, i := range cands {
		w := g.deps[i].weight
		g.cur[i] += w
		total += w
		if best < 0 || g.cur[i] > g.cur[best] {
			best = i
		}
	}
	g.cur[best] -= total
	g.mu.Unlock()
	return best
}
