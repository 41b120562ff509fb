package limit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// TypeInsufficientQuota is the error type OpenAI uses when spend is used up.
const TypeInsufficientQuota = "insufficient_quota"

// Spend is what a key (or team) has spent in the current UTC day and
// month, in USD, and what requests in flight hold against its budget.
type Spend struct {
	Day     string  `json:"day"`   // "2026-11-26"
	Month   string  `json:"month"` // "2026-11"
	Daily   float64 `json:"daily_usd"`
	Monthly float64 `json:"monthly_usd"`
	Held    float64 `json:"held_usd"`
}

// BudgetStore keeps spend per scope name (a key, or "team:<team>") and UTC
// period, and the holds of hard budgets. day and month name the current
// periods; spend of any other period is not returned.
type BudgetStore interface {
	Holder
	Add(ctx context.Context, name string, usd float64, day, month string) (Spend, error)
	Get(ctx context.Context, name, day, month string) (Spend, error)
	Reset(ctx context.Context, name, day, month string) error
}

// Budgets enforces hard budgets per key and per team: see Reserve.
type Budgets struct {
	store    BudgetStore
	now      func() time.Time
	teams    map[string]TeamBudget
	holdTTL  time.Duration
	idPrefix string // unique to this instance, so hold ids never meet
	seq      atomic.Uint64
}

// NewBudgets returns Budgets on store.
func NewBudgets(store BudgetStore, o BudgetOptions) *Budgets {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HoldTTL <= 0 {
		o.HoldTTL = DefaultHoldTTL
	}
	return &Budgets{store: store, now: o.Now, teams: o.Teams, holdTTL: o.HoldTTL, idPrefix: newIDPrefix()}
}

func periods(t time.Time) (day, month string) {
	t = t.UTC()
	var b [10]byte
	d := t.AppendFormat(b[:0], "2006-01-02")
	return string(d), string(d[:7])
}

// Team returns the budget of team and whether it has one.
func (b *Budgets) Team(team string) (TeamBudget, bool) {
	t, ok := b.teams[team]
	return t, ok
}

// Add records usd spent by p (and by its team) without a hold. It runs
// after the answer, so it ignores the cancellation of ctx.
func (b *Budgets) Add(ctx context.Context, p *Principal, usd float64) error {
	if usd <= 0 {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	day, month := periods(b.now())
	if _, err := b.store.Add(ctx, p.Name, usd, day, month); err != nil {
		return err
	}
	if p.Team == "" {
		return nil
	}
	_, err := b.store.Add(ctx, p.teamScope(), usd, day, month)
	return err
}

// Spend reads what the scope called name (a key's name, or TeamScope(team))
// has spent in the current periods.
func (b *Budgets) Spend(ctx context.Context, name string) (Spend, error) {
	day, month := periods(b.now())
	return b.store.Get(ctx, name, day, month)
}

// Reset sets the scope's spend of the current day and month back to zero.
// Holds of requests in flight stay: they settle as they end.
func (b *Budgets) Reset(ctx context.Context, name string) error {
	day, month := periods(b.now())
	return b.store.Reset(ctx, name, day, month)
}

// LocalBudgetStore is an in-memory BudgetStore for a single instance.
type LocalBudgetStore struct {
	mu    sync.Mutex
	spend map[string]*Spend
	h     localHolds
	now   func() time.Time
}

// NewLocalBudgetStore returns an empty in-memory store.
func NewLocalBudgetStore() *LocalBudgetStore { return NewLocalBudgetStoreAt(time.Now) }

// NewLocalBudgetStoreAt is NewLocalBudgetStore with now as the clock of
// hold expiry.
func NewLocalBudgetStoreAt(now func() time.Time) *LocalBudgetStore {
	return &LocalBudgetStore{spend: make(map[string]*Spend), h: localHolds{holds: make(map[string]map[string]localHold)}, now: now}
}

// current returns name's entry with periods other than day and month zeroed.
func (l *LocalBudgetStore) current(name, day, month string) *Spend {
	s := l.spend[name]
	if s == nil {
		s = &Spend{}
		l.spend[name] = s
	}
	if s.Day != day {
		s.Day, s.Daily = day, 0
	}
	if s.Month != month {
		s.Month, s.Monthly = month, 0
	}
	return s
}

// Add implements BudgetStore.
func (l *LocalBudgetStore) Add(_ context.Context, name string, usd float64, day, month string) (Spend, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.current(name, day, month)
	s.Daily += usd
	s.Monthly += usd
	return *s, nil
}

// Get implements BudgetStore.
func (l *LocalBudgetStore) Get(_ context.Context, name, day, month string) (Spend, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := Spend{Day: day, Month: month}
	if s := l.spend[name]; s != nil {
		out = *l.current(name, day, month)
	}
	out.Held = l.heldLocked(name)
	return out, nil
}

// Reset implements BudgetStore.
func (l *LocalBudgetStore) Reset(_ context.Context, name, day, month string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.spend, name)
	return nil
}

// RedisBudgetStore keeps spend in Redis under
// "<prefix><name>:d:<yyyy-mm-dd>" and "<prefix><name>:m:<yyyy-mm>" so every
// instance sees one total. When Redis fails it uses its fallback store
// until Redis answers again; spend recorded there stays local.
type RedisBudgetStore struct {
	client   rueidis.Client
	fallback BudgetStore
	redisGate
}

// Keys outlive their period a little so a clock skew between instances
// cannot drop spend; nothing reads an old period.
const (
	dayKeyTTL   = 49 * time.Hour
	monthKeyTTL = 33 * 24 * time.Hour
)

// NewRedisBudgetStore returns a store on client that falls back to fallback.
func NewRedisBudgetStore(client rueidis.Client, fallback BudgetStore, o RedisOptions) *RedisBudgetStore {
	return &RedisBudgetStore{client: client, fallback: fallback, redisGate: redisGate{opts: o.withDefaults("llm-edge:budget:")}}
}

func (r *RedisBudgetStore) keys(name, day, month string) (string, string) {
	return r.opts.Prefix + name + ":d:" + day, r.opts.Prefix + name + ":m:" + month
}

// Add implements BudgetStore.
func (r *RedisBudgetStore) Add(ctx context.Context, name string, usd float64, day, month string) (Spend, error) {
	if r.up() {
		s, err := r.add(ctx, name, usd, day, month)
		if err == nil {
			return s, nil
		}
		if err := r.failed(ctx, err); err != nil {
			return Spend{}, err
		}
	}
	return r.fallback.Add(ctx, name, usd, day, month)
}

func (r *RedisBudgetStore) add(ctx context.Context, name string, usd float64, day, month string) (Spend, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	dk, mk := r.keys(name, day, month)
	amount := strconv.FormatFloat(usd, 'f', -1, 64)
	c := r.client
	res := c.DoMulti(ctx,
		c.B().Incrbyfloat().Key(dk).Increment(usd).Build(),
		c.B().Expire().Key(dk).Seconds(int64(dayKeyTTL/time.Second)).Build(),
		c.B().Incrbyfloat().Key(mk).Increment(usd).Build(),
		c.B().Expire().Key(mk).Seconds(int64(monthKeyTTL/time.Second)).Build(),
	)
	s := Spend{Day: day, Month: month}
	for i, res := range res {
		if i%2 == 1 {
			continue // EXPIRE: its INCRBYFLOAT says all there is to say
		}
		key, dst, ttl := dk, &s.Daily, dayKeyTTL
		if i == 2 {
			key, dst, ttl = mk, &s.Monthly, monthKeyTTL
		}
		v, err := res.AsFloat64()
		if e := res.Error(); e != nil && repairable(e) {
			v, err = r.repairAdd(ctx, key, amount, ttl)
		}
		if err != nil {
			return Spend{}, fmt.Errorf("redis budget add %s: %w", amount, err)
		}
		*dst = v
	}
	return s, nil
}

// repairable reports whether a Redis error says a key holds something that
// is not a number of dollars: another type, or a string that is not one.
func repairable(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "WRONGTYPE") || strings.Contains(msg, "not a valid float")
}

// budgetRepairScript adds ARGV[1] to KEYS[1] and sets its TTL (ARGV[2]
// seconds), replacing the key first if it holds no number. It returns
// {new total, repaired}. Another instance may have repaired the key since
// our INCRBYFLOAT failed; then it simply adds.
var budgetRepairScript = rueidis.NewLuaScript(`
local repaired = 0
local v = redis.pcall('INCRBYFLOAT', KEYS[1], ARGV[1])
if type(v) == 'table' and v.err then
  if not (string.find(v.err, 'WRONGTYPE', 1, true) or string.find(v.err, 'not a valid float', 1, true)) then
    return redis.error_reply(v.err)
  end
  redis.call('DEL', KEYS[1])
  v = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
  repaired = 1
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {v, repaired}
`)

func (r *RedisBudgetStore) repairAdd(ctx context.Context, key, amount string, ttl time.Duration) (float64, error) {
	vals, err := budgetRepairScript.Exec(ctx, r.client, []string{key}, []string{amount, strconv.FormatInt(int64(ttl/time.Second), 10)}).ToArray()
	if err != nil {
		return 0, fmt.Errorf("repair: %w", err)
	}
	if len(vals) != 2 {
		return 0, errors.New("repair: unexpected reply")
	}
	v, err := vals[0].AsFloat64()
	if err != nil {
		return 0, fmt.Errorf("repair: %w", err)
	}
	if n, _ := vals[1].AsInt64(); n == 1 {
		r.repaired()
	}
	return v, nil
}

// Get implements BudgetStore.
func (r *RedisBudgetStore) Get(ctx context.Context, name, day, month string) (Spend, error) {
	if r.up() {
		s, err := r.get(ctx, name, day, month)
		if err == nil {
			return s, nil
		}
		if err := r.failed(ctx, err); err != nil {
			return Spend{}, err
		}
	}
	return r.fallback.Get(ctx, name, day, month)
}

func (r *RedisBudgetStore) get(ctx context.Context, name, day, month string) (Spend, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	dk, mk := r.keys(name, day, month)
	vals, err := r.client.Do(ctx, r.client.B().Mget().Key(dk, mk, r.opts.Prefix+name+":held").Build()).ToArray()
	if err != nil {
		return Spend{}, fmt.Errorf("redis budget get: %w", err)
	}
	if len(vals) != 3 {
		return Spend{}, errors.New("redis budget get: unexpected reply")
	}
	s := Spend{Day: day, Month: month}
	for i, v := range vals {
		if v.IsNil() {
			continue
		}
		f, err := v.AsFloat64()
		if err != nil {
			// Not a number (MGET reads another type as nil): no spend
			// known; the next Add replaces the key and counts the repair.
			continue
		}
		switch i {
		case 0:
			s.Daily = f
		case 1:
			s.Monthly = f
		default:
			s.Held = f
		}
	}
	return s, nil
}

// Reset implements BudgetStore. The fallback is reset too, so spend
// recorded locally during an outage does not come back.
func (r *RedisBudgetStore) Reset(ctx context.Context, name, day, month string) error {
	if err := r.fallback.Reset(ctx, name, day, month); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	dk, mk := r.keys(name, day, month)
	if err := r.client.Do(ctx, r.client.B().Del().Key(dk, mk).Build()).Error(); err != nil {
		return fmt.Errorf("redis budget reset: %w", err)
	}
	return nil
}
