package limit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/edge-agent/edge-agent/internal/api"
)

// A hard budget holds: before a request runs, the most it can cost is
// reserved (held) against the budget of every scope it is charged to (its
// key and its team) in one atomic step; a request whose hold does not fit
// is refused. When the request ends the hold is settled: released, and the
// actual cost added to the spend. A hold whose request never settles (the
// instance crashed) expires after its TTL, so a crash cannot lock a budget
// for good.

// DefaultHoldTTL is how long a reservation lives when its request never
// settles.
const DefaultHoldTTL = 10 * time.Minute

// TeamBudget is the budget every key of a team shares, in USD; 0: none.
type TeamBudget struct {
	DailyUSD, MonthlyUSD float64
}

// BudgetOptions configure Budgets.
type BudgetOptions struct {
	// Teams are the teams' shared budgets, by team name.
	Teams map[string]TeamBudget
	// HoldTTL bounds the life of a reservation (0: DefaultHoldTTL); it
	// must outlast the longest request.
	HoldTTL time.Duration
	// Now is the clock of the budget periods (nil: time.Now).
	Now func() time.Time
}

// HoldScope is one budget a hold is charged to.
type HoldScope struct {
	// Name is the scope's name in the store: the key's name, or
	// "team:<team>" (key names have no ':', so the two never meet).
	Name                 string
	DailyUSD, MonthlyUSD float64
}

// who names the scope in a refusal: API key "x", team "red".
func (s HoldScope) who() string {
	if team, ok := strings.CutPrefix(s.Name, "team:"); ok {
		return fmt.Sprintf("team %q", team)
	}
	return fmt.Sprintf("API key %q", s.Name)
}

func (s HoldScope) budgeted() bool { return s.DailyUSD > 0 || s.MonthlyUSD > 0 }

// Hold is one request's reservation.
type Hold struct {
	ID     string
	USD    float64     // the request's maximum cost, held
	Scopes []HoldScope // every scope the request is charged to
	TTL    time.Duration
	held   bool // a store holds USD for the budgeted scopes
	local  bool // the Redis store's fallback took the hold
}

func (h *Hold) member() string {
	return h.ID + ":" + strconv.FormatFloat(h.USD, 'g', -1, 64)
}

// Refusal says which budget a hold did not fit.
type Refusal struct {
	Scope   int    // index into Hold.Scopes
	Period  string // "daily" or "monthly"
	Spent   float64
	Held    float64 // reserved by requests in flight
	Budget  float64
	Request float64 // the request's maximum cost
}

// Holder is the part of a BudgetStore that reserves and settles.
type Holder interface {
	// Reserve holds h.USD in every budgeted scope of h, or in none: it
	// returns the first budget the hold does not fit (spend + holds +
	// h.USD over the budget), or nil when it holds.
	Reserve(ctx context.Context, h *Hold, day, month string) (*Refusal, error)
	// Settle releases h (if held) and adds usd to the spend of every scope.
	Settle(ctx context.Context, h *Hold, usd float64, day, month string) error
}

// Reservation is a request's hold on its budgets; Settle it exactly once.
type Reservation struct {
	b    *Budgets
	p    *Principal
	hold Hold // zero for a principal without budgets
}

// scopes are the budgets p is charged to: its own and its team's.
func (b *Budgets) scopes(p *Principal) []HoldScope {
	s := append(make([]HoldScope, 0, 2), HoldScope{Name: p.Name, DailyUSD: p.BudgetDailyUSD, MonthlyUSD: p.BudgetMonthlyUSD})
	if p.Team != "" {
		t := b.teams[p.Team]
		s = append(s, HoldScope{Name: p.teamScope(), DailyUSD: t.DailyUSD, MonthlyUSD: t.MonthlyUSD})
	}
	return s
}

// Reserve holds maxUSD, the most the request can cost, against the
// budgets of p and of its team. It refuses with a 429 (budget_exceeded,
// naming the budget, what is spent and held, and the request's maximum)
// when that does not fit. A principal without any budget gets a
// Reservation that only records spend.
func (b *Budgets) Reserve(ctx context.Context, p *Principal, maxUSD float64) (*Reservation, error) {
	r := &Reservation{b: b, p: p}
	if !b.Budgeted(p) {
		return r, nil // spend only, recorded by Settle
	}
	r.hold = Hold{USD: maxUSD, TTL: b.holdTTL, ID: b.nextID(), Scopes: b.scopes(p)}
	now := b.now().UTC()
	day, month := periods(now)
	ref, err := b.store.Reserve(ctx, &r.hold, day, month)
	if err != nil {
		return nil, api.FromError(err)
	}
	if ref != nil {
		return nil, refused(r.hold.Scopes[ref.Scope].who(), ref, now)
	}
	return r, nil
}

// Budgeted reports whether a budget applies to p: its own or its team's.
func (b *Budgets) Budgeted(p *Principal) bool {
	if p.HasBudget() {
		return true
	}
	t := b.teams[p.Team]
	return p.Team != "" && (t.DailyUSD > 0 || t.MonthlyUSD > 0)
}

// Settle releases the hold and records usd, the actual cost. It runs after
// the answer, so it ignores the cancellation of ctx.
func (r *Reservation) Settle(ctx context.Context, usd float64) error {
	if !r.hold.held {
		return r.b.Add(ctx, r.p, usd)
	}
	day, month := periods(r.b.now())
	return r.b.store.Settle(context.WithoutCancel(ctx), &r.hold, max(usd, 0), day, month)
}

// TeamScope is the store name of a team's budget.
func TeamScope(team string) string { return "team:" + team }

func (b *Budgets) nextID() string {
	var buf [32]byte
	return string(strconv.AppendUint(append(buf[:0], b.idPrefix...), b.seq.Add(1), 36))
}

func newIDPrefix() string {
	var r [6]byte
	_, _ = rand.Read(r[:]) // never fails (crypto/rand)
	return hex.EncodeToString(r[:]) + "-"
}

func refused(who string, ref *Refusal, now time.Time) *api.Error {
	var reset time.Time
	when := "at 00:00 UTC"
	if ref.Period == "daily" {
		reset = time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	} else {
		reset = time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		when = "on the 1st of next month (UTC)"
	}
	retry := reset.Sub(now)
	var msg string
	switch {
	case ref.Spent >= ref.Budget:
		msg = fmt.Sprintf("The %s budget of %s for %s is used up ($%.4f spent); it resets %s.",
			ref.Period, dollars(ref.Budget), who, ref.Spent, when)
	case ref.Spent+ref.Request > ref.Budget:
		msg = fmt.Sprintf("The %s budget of %s for %s cannot cover this request: it may cost up to $%.4f "+
			"and $%.4f is left. Lower max_tokens, or wait until the budget resets %s.",
			ref.Period, dollars(ref.Budget), who, ref.Request, ref.Budget-ref.Spent, when)
	default:
		// Only the holds of requests in flight are in the way: they settle
		// (usually below their maximum) within seconds.
		msg = fmt.Sprintf("The %s budget of %s for %s is reserved by requests in flight ($%.4f spent, "+
			"$%.4f held; this request may cost up to $%.4f). Please try again shortly.",
			ref.Period, dollars(ref.Budget), who, ref.Spent, ref.Held, ref.Request)
		retry = time.Second
	}
	return &api.Error{Status: http.StatusTooManyRequests, Type: TypeInsufficientQuota, Code: "budget_exceeded",
		Message: msg, RetryAfter: retry}
}

// dollars formats a budget as it was configured: "$1.00", "$2.50",
// "$0.0005".
func dollars(v float64) string {
	s := strconv.FormatFloat(v, 'f', 6, 64)
	s = strings.TrimRight(s, "0")
	switch i := strings.IndexByte(s, '.'); {
	case len(s)-i == 1:
		s += "00"
	case len(s)-i == 2:
		s += "0"
	}
	return "$" + s
}

// fits reports the first budget of s that spend plus holds plus usd would
// exceed: a budget already used up refuses even a request that costs
// nothing.
func fits(s HoldScope, daily, monthly, held, usd float64) (period string, spent, budget float64, ok bool) {
	if s.DailyUSD > 0 && (daily >= s.DailyUSD || daily+held+usd > s.DailyUSD) {
		return "daily", daily, s.DailyUSD, false
	}
	if s.MonthlyUSD > 0 && (monthly >= s.MonthlyUSD || monthly+held+usd > s.MonthlyUSD) {
		return "monthly", monthly, s.MonthlyUSD, false
	}
	return "", 0, 0, true
}

// localHolds is the in-memory bookkeeping of a LocalBudgetStore's holds,
// under the store's lock.
type localHolds struct {
	holds map[string]map[string]localHold // scope -> hold id -> hold
}

type localHold struct {
	usd      float64
	deadline time.Time
}

// held sums the live holds of scope, dropping the expired ones. l.mu is held.
func (l *localHolds) held(scope string, now time.Time) float64 {
	sum := 0.0
	for id, h := range l.holds[scope] {
		if !now.Before(h.deadline) {
			delete(l.holds[scope], id)
			continue
		}
		sum += h.usd
	}
	return sum
}

// Reserve implements Holder for one instance.
func (l *LocalBudgetStore) Reserve(_ context.Context, h *Hold, day, month string) (*Refusal, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for i, s := range h.Scopes {
		if !s.budgeted() {
			continue
		}
		sp := l.current(s.Name, day, month)
		held := l.h.held(s.Name, now)
		if period, spent, budget, ok := fits(s, sp.Daily, sp.Monthly, held, h.USD); !ok {
			return &Refusal{Scope: i, Period: period, Spent: spent, Held: held, Budget: budget, Request: h.USD}, nil
		}
	}
	for _, s := range h.Scopes {
		if !s.budgeted() {
			continue
		}
		if l.h.holds[s.Name] == nil {
			l.h.holds[s.Name] = make(map[string]localHold)
		}
		l.h.holds[s.Name][h.ID] = localHold{usd: h.USD, deadline: now.Add(h.TTL)}
	}
	h.held = true
	return nil, nil
}

// Settle implements Holder for one instance.
func (l *LocalBudgetStore) Settle(_ context.Context, h *Hold, usd float64, day, month string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range h.Scopes {
		if h.held {
			delete(l.h.holds[s.Name], h.ID)
		}
		if usd > 0 {
			sp := l.current(s.Name, day, month)
			sp.Daily += usd
			sp.Monthly += usd
		}
	}
	return nil
}

// heldLocked is what scope's live holds sum to. l.mu is held.
func (l *LocalBudgetStore) heldLocked(scope string) float64 { return l.h.held(scope, l.now()) }

// reserveScript holds ARGV[1] dollars in every scope, or in none. Per scope
// KEYS are four: the day's spend, the month's spend, the holds (a sorted set
// of "<id>:<usd>" by deadline, in ms of Redis' clock) and their total. ARGV:
// usd, member, ttl_ms, then per scope daily and monthly budget (0: none).
// Expired holds are dropped first. It returns {1} when it held, or {0,
// scope index (0-based), 1 for daily or 2 for monthly, spent, held}, with a
// last element 1 when a key of the wrong type was replaced.
var reserveScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local usd = tonumber(ARGV[1])
local repaired = 0
local function num(k)
  local v = redis.pcall('GET', k)
  if type(v) == 'table' and v.err then redis.call('DEL', k); repaired = 1; return 0 end
  if not v then return 0 end
  local n = tonumber(v)
  if not n then redis.call('DEL', k); repaired = 1; return 0 end
  return n
end
local function held(z, total)
  local old = redis.pcall('ZRANGEBYSCORE', z, '-inf', now)
  if type(old) == 'table' and old.err then redis.call('DEL', z, total); repaired = 1; return 0 end
  local h = num(total)
  if #old > 0 then
    for _, m in ipairs(old) do
      h = h - (tonumber(string.match(m, ':([^:]+)$')) or 0)
    end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
    if redis.call('ZCARD', z) == 0 or h <= 0 then
      h = 0
      redis.call('DEL', total)
    else
      redis.call('SET', total, string.format('%.17g', h), 'KEEPTTL')
    end
  end
  return h
end
local n = #KEYS / 4
local helds = {}
for i = 0, n - 1 do
  local h = held(KEYS[i*4+3], KEYS[i*4+4])
  helds[i+1] = h
  for j = 1, 2 do
    local budget = tonumber(ARGV[3 + i*2 + j])
    if budget > 0 then
      local spent = num(KEYS[i*4+j])
      if spent >= budget or spent + h + usd > budget then
        return {0, i, j, string.format('%.17g', spent), string.format('%.17g', h), repaired}
      end
    end
  end
end
local deadline = now + tonumber(ARGV[3])
for i = 0, n - 1 do
  redis.call('ZADD', KEYS[i*4+3], deadline, ARGV[2])
  redis.call('PEXPIRE', KEYS[i*4+3], ARGV[3])
  redis.call('SET', KEYS[i*4+4], string.format('%.17g', helds[i+1] + usd), 'PX', ARGV[3])
end
return {1, 0, 0, '0', '0', repaired}
`)

// settleScript releases a hold and adds the actual cost. Per scope KEYS as
// for reserveScript. ARGV: usd (actual), member, held usd, day TTL s, month
// TTL s, then per scope "1" if the hold is there. It returns 1 when a key
// of the wrong type was replaced.
var settleScript = rueidis.NewLuaScript(`
local usd = tonumber(ARGV[1])
local repaired = 0
local function add(k, ttl)
  local v = redis.pcall('INCRBYFLOAT', k, ARGV[1])
  if type(v) == 'table' and v.err then
    redis.call('DEL', k)
    redis.call('INCRBYFLOAT', k, ARGV[1])
    repaired = 1
  end
  redis.call('EXPIRE', k, ttl)
end
local n = #KEYS / 4
for i = 0, n - 1 do
  local z, total = KEYS[i*4+3], KEYS[i*4+4]
  if ARGV[5 + i + 1] == '1' then
    local removed = redis.pcall('ZREM', z, ARGV[2])
    if removed == 1 then
      local h = (tonumber(redis.call('GET', total)) or 0) - tonumber(ARGV[3])
      if h <= 0 or redis.call('ZCARD', z) == 0 then
        redis.call('DEL', total)
      else
        redis.call('SET', total, string.format('%.17g', h), 'KEEPTTL')
      end
    end
  end
  if usd > 0 then
    add(KEYS[i*4+1], ARGV[4])
    add(KEYS[i*4+2], ARGV[5])
  end
end
return repaired
`)

func (r *RedisBudgetStore) holdKeys(scopes []HoldScope, only func(HoldScope) bool, day, month string) []string {
	keys := make([]string, 0, 4*len(scopes))
	for _, s := range scopes {
		if only != nil && !only(s) {
			continue
		}
		dk, mk := r.keys(s.Name, day, month)
		keys = append(keys, dk, mk, r.opts.Prefix+s.Name+":holds", r.opts.Prefix+s.Name+":held")
	}
	return keys
}

// Reserve implements Holder across every instance on the Redis.
func (r *RedisBudgetStore) Reserve(ctx context.Context, h *Hold, day, month string) (*Refusal, error) {
	if r.up() {
		ref, err := r.reserve(ctx, h, day, month)
		if err == nil {
			return ref, nil
		}
		if err := r.failed(ctx, err); err != nil {
			return nil, err
		}
	}
	h.local = true
	return r.fallback.Reserve(ctx, h, day, month)
}

func (r *RedisBudgetStore) reserve(ctx context.Context, h *Hold, day, month string) (*Refusal, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	var idx []int // script scope -> h.Scopes index
	args := []string{strconv.FormatFloat(h.USD, 'g', -1, 64), h.member(), strconv.FormatInt(h.TTL.Milliseconds(), 10)}
	for i, s := range h.Scopes {
		if s.budgeted() {
			idx = append(idx, i)
			args = append(args, strconv.FormatFloat(s.DailyUSD, 'g', -1, 64), strconv.FormatFloat(s.MonthlyUSD, 'g', -1, 64))
		}
	}
	vals, err := reserveScript.Exec(ctx, r.client, r.holdKeys(h.Scopes, HoldScope.budgeted, day, month), args).ToArray()
	if err != nil {
		return nil, fmt.Errorf("redis budget reserve: %w", err)
	}
	if len(vals) != 6 {
		return nil, errors.New("redis budget reserve: unexpected reply")
	}
	if n, _ := vals[5].AsInt64(); n == 1 {
		r.repaired()
	}
	if ok, _ := vals[0].AsInt64(); ok == 1 {
		h.held = true
		return nil, nil
	}
	i, _ := vals[1].AsInt64()
	j, _ := vals[2].AsInt64()
	spent, _ := vals[3].ToString()
	held, _ := vals[4].ToString()
	if i < 0 || int(i) >= len(idx) {
		return nil, errors.New("redis budget reserve: unexpected scope")
	}
	ref := &Refusal{Scope: idx[i], Period: "daily", Request: h.USD, Budget: h.Scopes[idx[i]].DailyUSD}
	if j == 2 {
		ref.Period, ref.Budget = "monthly", h.Scopes[idx[i]].MonthlyUSD
	}
	ref.Spent, _ = strconv.ParseFloat(spent, 64)
	ref.Held, _ = strconv.ParseFloat(held, 64)
	return ref, nil
}

// Settle implements Holder. A hold its fallback took is released there; the
// spend goes to Redis when it answers (and to the fallback when not).
func (r *RedisBudgetStore) Settle(ctx context.Context, h *Hold, usd float64, day, month string) error {
	if h.local {
		local := *h
		if err := r.fallback.Settle(ctx, &local, 0, day, month); err != nil {
			return err
		}
	}
	if r.up() {
		err := r.settle(ctx, h, usd, day, month)
		if err == nil {
			return nil
		}
		if err := r.failed(ctx, err); err != nil {
			return err
		}
	}
	if usd <= 0 {
		return nil // an unreleased Redis hold expires on its own
	}
	spendOnly := *h
	spendOnly.held = false
	return r.fallback.Settle(ctx, &spendOnly, usd, day, month)
}

func (r *RedisBudgetStore) settle(ctx context.Context, h *Hold, usd float64, day, month string) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	args := []string{strconv.FormatFloat(usd, 'g', -1, 64), h.member(), strconv.FormatFloat(h.USD, 'g', -1, 64),
		strconv.FormatInt(int64(dayKeyTTL/time.Second), 10), strconv.FormatInt(int64(monthKeyTTL/time.Second), 10)}
	for _, s := range h.Scopes {
		flag := "0"
		if h.held && !h.local && s.budgeted() {
			flag = "1"
		}
		args = append(args, flag)
	}
	n, err := settleScript.Exec(ctx, r.client, r.holdKeys(h.Scopes, nil, day, month), args).AsInt64()
	if err != nil {
		return fmt.Errorf("redis budget settle: %w", err)
	}
	if n == 1 {
		r.repaired()
	}
	return nil
}
