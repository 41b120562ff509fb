package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// result merges the workers' statistics.
func (p *phase) result(workers []*worker) *Result {
	cfg := p.r.cfg
	res := &Result{
		Label:       cfg.Label,
		URL:         cfg.URL,
		Model:       cfg.Model,
		Mode:        "closed",
		Concurrency: cfg.Concurrency,
		Rate:        cfg.Rate,
		Mix:         cfg.Mix,
		StreamShare: cfg.StreamShare,
		RunID:       cfg.RunID,
		Start:       p.start.UTC(),
		Interrupted: p.stopped.Load(),
		Status:      map[string]int64{},
	}
	if cfg.Rate > 0 {
		res.Mode = "open"
	}
	if cfg.Mix == MixZipf {
		res.Prompts, res.ZipfS = cfg.Prompts, cfg.ZipfS
	}
	lat, ttft, over := newHistogram(), newHistogram(), newHistogram()
	var status [600]int64
	var statusOther int64
	last := p.start
	var series []slot
	for _, w := range workers {
		lat.merge(w.lat)
		ttft.merge(w.ttft)
		over.merge(w.over)
		for c, n := range w.status {
			status[c] += n
		}
		statusOther += w.statusOther
		res.Errors += w.errs
		res.TransportErrors += w.transport
		res.StreamErrors += w.streamErrs
		res.Streams += w.streams
		res.Dropped += w.dropped
		res.Hits.L1 += w.tiers.L1
		res.Hits.L2 += w.tiers.L2
		res.Hits.HitOther += w.tiers.HitOther
		res.Hits.Miss += w.tiers.Miss
		res.Hits.Bypass += w.tiers.Bypass
		res.Hits.None += w.tiers.None
		if w.last.After(last) {
			last = w.last
		}
		for len(series) < len(w.series) {
			series = append(series, slot{})
		}
		for i, s := range w.series {
			series[i].reqs += s.reqs
			series[i].errs += s.errs
			series[i].hits += s.hits
			series[i].lat += s.lat
		}
	}
	for c, n := range status {
		if n > 0 {
			res.Status[strconv.Itoa(c)] = n
		}
	}
	if statusOther > 0 {
		res.Status["other"] = statusOther
	}
	if res.TransportErrors > 0 {
		res.Status["transport"] = res.TransportErrors
	}
	res.Requests = int64(lat.n)
	elapsed := last.Sub(p.start)
	res.DurationS = elapsed.Seconds()
	// Throughput counts answers, not failures: a gateway refusing every
	// request fast must not look like a fast gateway.
	if elapsed > 0 {
		res.ThroughputRPS = float64(res.Requests-res.Errors) / elapsed.Seconds()
	}
	res.Latency = lat.percentiles()
	res.ErrorRate = ratio(res.Errors+res.Dropped, res.Requests+res.Dropped)
	hits := res.Hits.L1 + res.Hits.L2 + res.Hits.HitOther
	res.HitRate = ratio(hits, res.Requests)
	res.HitRates = TierRates{
		L1:     ratio(res.Hits.L1, res.Requests),
		L2:     ratio(res.Hits.L2, res.Requests),
		Miss:   ratio(res.Hits.Miss, res.Requests),
		Bypass: ratio(res.Hits.Bypass, res.Requests),
	}
	if over.n > 0 {
		o := over.percentiles()
		res.Overhead = &o
		res.OverheadMsMean = o.Mean / 1000
	}
	if ttft.n > 0 {
		t := ttft.percentiles()
		res.TTFT = &t
	}
	// Requests still in flight when the run ends land in a last interval
	// that may be a sliver: its few stragglers (the slowest requests, misses
	// more often than hits) would plot as a spurious dip, so a sliver under
	// a tenth of an interval is folded into the interval before it.
	if n := len(series); n >= 2 && elapsed-time.Duration(n-1)*p.interval < p.interval/10 {
		last := series[n-1]
		series = series[:n-1]
		series[n-2].reqs += last.reqs
		series[n-2].errs += last.errs
		series[n-2].hits += last.hits
		series[n-2].lat += last.lat
	}
	for i, s := range series {
		end := time.Duration(i+1) * p.interval
		if i == len(series)-1 && elapsed > end {
			end = elapsed // the folded sliver extends the last interval
		}
		span := end - time.Duration(i)*p.interval
		if end > elapsed { // the last interval is cut short by the end of the run
			span = max(elapsed-time.Duration(i)*p.interval, time.Millisecond)
			end = elapsed
		}
		pt := Point{
			TS:       end.Seconds(),
			Requests: s.reqs,
			RPS:      float64(s.reqs-s.errs) / span.Seconds(),
			Errors:   s.errs,
			HitRate:  ratio(s.hits, s.reqs),
		}
		if s.reqs > 0 {
			pt.LatencyMeanUs = round1(durUs(s.lat) / float64(s.reqs))
		}
		res.Series = append(res.Series, pt)
	}
	return res
}

// progress prints a status line every second until ctx ends.
func (p *phase) progress(ctx context.Context, name string, workers []*worker) {
	cfg := p.r.cfg
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var prev int64
	prevAt := p.start
	printed := false
	if name != "" {
		name += " "
	}
	for {
		select {
		case <-ctx.Done():
			if printed && cfg.ProgressTTY {
				fmt.Fprintln(cfg.Progress)
			}
			return
		case now := <-t.C:
			var reqs, errs, hits int64
			for _, w := range workers {
				reqs += w.liveReqs.Load()
				errs += w.liveErrs.Load()
				hits += w.liveHits.Load()
			}
			// req/s counts answers only, as the final report does.
			rps := float64(reqs-errs-prev) / now.Sub(prevAt).Seconds()
			prev, prevAt = reqs-errs, now
			line := fmt.Sprintf("%s%5.0fs  %9d req  %9.0f req/s  %6d errors  hit %5.1f%%",
				name, now.Sub(p.start).Seconds(), reqs, rps, errs, 100*ratio(hits, reqs))
			if cfg.ProgressTTY {
				fmt.Fprintf(cfg.Progress, "\r\x1b[K%s", line)
			} else {
				fmt.Fprintln(cfg.Progress, line)
			}
			printed = true
		}
	}
}
