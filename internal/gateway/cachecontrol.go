package gateway

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
)

// cacheControl is what a request asks of the cache.
type cacheControl struct {
	noCache bool          // skip lookup, do not store
	noStore bool          // look up, but do not write
	maxAge  time.Duration // accept only entries younger than this (0: any)
	ttl     time.Duration // X-Cache-TTL for the write (0: tier defaults)
}

// parseCacheControl reads Cache-Control and X-Cache-TTL. Unknown
// directives are ignored, as HTTP caches do; malformed numbers are errors
// because a client that asked for freshness must not get a stale answer.
func parseCacheControl(h http.Header) (cacheControl, error) {
	var cc cacheControl
	for _, line := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(line, ",") {
			d = strings.TrimSpace(d)
			name, val, _ := strings.Cut(d, "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-cache":
				cc.noCache = true
			case "no-store":
				cc.noStore = true
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(val), `"`), 10, 64)
				if err != nil || n < 0 {
					return cc, api.InvalidRequest("Cache-Control", "max-age must be a non-negative integer number of seconds, got %q", val)
				}
				if n == 0 {
					// max-age=0: nothing stored is fresh enough; behave as a
					// lookup that can only miss.
					cc.noCache = true
				}
				cc.maxAge = time.Duration(n) * time.Second
			}
		}
	}
	if v := headerValue(h, "X-Cache-Ttl"); v != "" { // canonical form of X-Cache-TTL
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n <= 0 || n > 365*24*3600 {
			return cc, api.InvalidRequest("X-Cache-TTL", "X-Cache-TTL must be a positive integer number of seconds (at most one year), got %q", v)
		}
		cc.ttl = time.Duration(n) * time.Second
	}
	return cc, nil
}

// bound applies the operator's limits to what the client asked: its TTL and
// max-age are clamped to MaxCacheTTL, and no-cache/no-store are dropped when
// the caller may not bypass a cache it shares with others (the request is
// then served like one without them).
func (a *Admission) bound(cc cacheControl) cacheControl {
	if a.NoCacheBypass {
		cc.noCache, cc.noStore = false, false
	}
	if a.MaxCacheTTL > 0 {
		cc.ttl = min(cc.ttl, a.MaxCacheTTL)
		cc.maxAge = min(cc.maxAge, a.MaxCacheTTL)
	}
	return cc
}
