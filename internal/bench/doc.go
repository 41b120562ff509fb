// Package bench is the built-in load generator behind `edge-agent bench`.
//
// It drives POST /v1/chat/completions in closed loop (a fixed number of
// workers, each sending as soon as its last answer arrived) or open loop
// (a constant arrival rate; latency counts from when a request was due, so
// a stalled server shows up in the percentiles instead of silently slowing
// the load down). Request bodies are rendered before the run, each worker
// keeps its own log-linear histograms, and nothing is shared on the hot
// path but one atomic counter.
//
// # JSON output
//
// `--json` prints one Result. The field names are stable:
//
//	label, url, model          as given (--label, --url, --model)
//	mode                       "closed" or "open"
//	concurrency, rate          --concurrency; --rate in req/s (open loop only)
//	mix, prompts, zipf_s       --mix; prompts and zipf_s for the zipf mix
//	stream_share, run_id       --stream-share; the id inside every prompt
//	start                      RFC 3339 start of the measured run
//	interrupted                true when the run was cut short (Ctrl-C)
//	requests                   requests answered or failed (not dropped)
//	duration_s                 first send to last answer, seconds
//	throughput_rps             successful requests (requests - errors) / duration_s
//	latency_us                 {count,min,mean,p50,p90,p95,p99,p99_9,max} in µs
//	errors                     requests that failed: non-2xx, transport error,
//	                           stream without [DONE]
//	transport_errors           connect, timeout and read failures
//	stream_errors              2xx streams that ended without [DONE]
//	dropped                    open loop: requests not sent because they were
//	                           overdue by more than --timeout
//	error_rate                 (errors + dropped) / (requests + dropped)
//	status                     {"200": n, "429": n, ..., "transport": n}
//	hits                       {l1,l2,hit_other,miss,bypass,none} from the
//	                           X-Cache-Status and X-Cache-Layer headers
//	hit_rate                   (l1 + l2 + hit_other) / requests
//	hit_rates                  {l1,l2,miss,bypass} as fractions of requests
//	overhead_ms_mean           mean X-Edge-Overhead-Ms
//	overhead_us                percentiles of X-Edge-Overhead-Ms, in µs
//	streams                    2xx event-stream answers read
//	ttft_us                    time to the first event with content, in µs
//	series                     per --interval: {t_s,requests,rps,errors,
//	                           hit_rate,latency_mean_us}; rps counts
//	                           successful requests; t_s is the end of the
//	                           interval in seconds since start
//
// `edge-agent bench` exits non-zero (after printing the report) when no
// request succeeded.
//
// Percentiles are exact to 1 µs below 128 µs and within 0.4 % above.
package bench
