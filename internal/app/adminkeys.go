package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/limit"
)

// keySyncInterval is how often an instance asks the key store whether a
// key was created, changed or revoked: well within the second the keys API
// promises.
const keySyncInterval = 250 * time.Millisecond

// runtimeKeys serves /admin/keys and keeps this instance's Auth in step with
// the key store, which every instance on one Redis shares.
type runtimeKeys struct {
	auth   *limit.Auth
	store  limit.KeyStore // nil: no Redis and no keys file
	logger *slog.Logger
	now    func() time.Time

	mu     sync.Mutex // one sync at a time
	seen   int64      // the store version Auth holds
	failed bool       // the last sync failed (logged once per outage)
	stop   context.CancelFunc
	done   chan struct{}
}

// startRuntimeKeys loads the runtime keys and polls for changes until Close.
func (a *App) startRuntimeKeys(store limit.KeyStore) {
	k := &runtimeKeys{auth: a.auth, store: store, logger: a.logger.Logger, now: time.Now, seen: -1}
	a.keys = k
	if store == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	k.stop, k.done = cancel, make(chan struct{})
	k.sync(ctx)
	go func() {
		defer close(k.done)
		t := time.NewTicker(keySyncInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				k.sync(ctx)
			}
		}
	}()
}

func (k *runtimeKeys) close() {
	if k != nil && k.stop != nil {
		k.stop()
		<-k.done
	}
}

// sync loads the keys if the store's version moved. When the store cannot
// be read the keys known last stay in use.
func (k *runtimeKeys) sync(ctx context.Context) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	v, err := k.store.Version(ctx)
	if err == nil && v == k.seen {
		return
	}
	var recs []limit.KeyRecord
	if err == nil {
		recs, err = k.store.List(ctx)
	}
	if err != nil && recs == nil {
		if !k.failed && ctx.Err() == nil {
			k.logger.Warn("runtime keys: cannot read the key store; the keys known last stay in use", "error", err.Error())
		}
		k.failed = true
		return
	}
	if err != nil {
		k.logger.Warn("runtime keys: some records were left out", "error", err.Error())
	}
	if err := k.auth.SetRuntimeKeys(recs); err != nil {
		k.logger.Warn("runtime keys: some keys were left out", "error", err.Error())
	}
	k.seen, k.failed = v, false
}

// keyRoutes are the keys API; handlers are guarded by the admin key.
func (a *App) keyRoutes() map[string]http.HandlerFunc {
	k := a.keys
	return map[string]http.HandlerFunc{
		"POST /admin/keys":               k.guarded(k.create),
		"GET /admin/keys":                k.guarded(k.list),
		"GET /admin/keys/{name}":         k.guarded(k.get),
		"PATCH /admin/keys/{name}":       k.guarded(k.patch),
		"DELETE /admin/keys/{name}":      k.guarded(k.remove),
		"POST /admin/keys/{name}/rotate": k.guarded(k.rotate),
	}
}

// guarded refuses the keys API where it cannot be safe or cannot work: an
// open gateway without an admin key (its admin routes are open to anyone),
// and no store to keep keys in.
func (k *runtimeKeys) guarded(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !k.auth.HasAdmin():
			api.WriteError(w, &api.Error{Status: http.StatusForbidden, Type: api.TypePermission, Code: "admin_disabled",
				Message: "the keys API needs the admin API key: set ADMIN_API_KEY"})
			return
		case k.store == nil:
			api.WriteError(w, &api.Error{Status: http.StatusNotImplemented, Type: api.TypeServer, Code: "keys_store_not_configured",
				Message: "runtime keys need a place to live: set REDIS_URL, or auth.keys_file (KEYS_FILE) for a single instance"})
			return
		}
		if err := h(w, r); err != nil {
			api.WriteError(w, keysError(err))
		}
	}
}

func keysError(err error) *api.Error {
	var e *api.Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, limit.ErrKeyNotFound):
		return &api.Error{Status: http.StatusNotFound, Type: api.TypeInvalidRequest, Code: "key_not_found", Message: "no runtime key of that name"}
	case errors.Is(err, limit.ErrKeyExists):
		return &api.Error{Status: http.StatusConflict, Type: api.TypeInvalidRequest, Code: "key_exists", Message: "a key of that name exists"}
	case errors.Is(err, limit.ErrKeyChanged):
		return &api.Error{Status: http.StatusConflict, Type: api.TypeInvalidRequest, Code: "key_changed",
			Message: "the key was changed by another request meanwhile; read it and try again"}
	}
	return &api.Error{Status: http.StatusServiceUnavailable, Type: api.TypeServer, Code: "keys_store_unavailable",
		Message: "the key store cannot be reached: " + err.Error()}
}

// view is a record as the API shows it: without the digest.
func view(r limit.KeyRecord) limit.KeyRecord {
	r.KeySHA256 = ""
	return r
}

type createdKey struct {
	// Key is the secret, shown once: only its digest is kept.
	Key string `json:"key"`
	limit.KeyRecord
}

func (k *runtimeKeys) create(w http.ResponseWriter, r *http.Request) error {
	fields, err := readFields(r)
	if err != nil {
		return err
	}
	var rec limit.KeyRecord
	if err := applyFields(&rec, fields, true); err != nil {
		return err
	}
	if k.auth.IsStatic(rec.Name) {
		return &api.Error{Status: http.StatusConflict, Type: api.TypeInvalidRequest, Param: "name", Code: "key_exists",
			Message: fmt.Sprintf("%q is a key of the configuration", rec.Name)}
	}
	secret := limit.NewSecret()
	rec.KeySHA256 = limit.Digest(secret)
	rec.CreatedAt = k.now().UTC().Truncate(time.Second)
	rec.UpdatedAt = rec.CreatedAt
	if err := rec.Validate(); err != nil {
		return api.InvalidRequest("", "%v", err)
	}
	if err := k.store.Create(r.Context(), rec); err != nil {
		return err
	}
	k.sync(r.Context())
	k.audit(r, "key.create", rec, slog.Any("fields", sortedKeys(fields)))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	return json.NewEncoder(w).Encode(createdKey{Key: secret, KeyRecord: view(rec)})
}

func (k *runtimeKeys) list(w http.ResponseWriter, r *http.Request) error {
	recs, err := k.store.List(r.Context())
	if err != nil && recs == nil {
		return err
	}
	out := make([]limit.KeyRecord, 0, len(recs))
	for _, rec := range recs {
		out = append(out, view(rec))
	}
	writeJSON(w, map[string]any{"object": "list", "data": out})
	return nil
}

// find reads the runtime key called name.
func (k *runtimeKeys) find(ctx context.Context, name string) (limit.KeyRecord, error) {
	if k.auth.IsStatic(name) {
		return limit.KeyRecord{}, &api.Error{Status: http.StatusConflict, Type: api.TypeInvalidRequest, Code: "key_is_static",
			Message: fmt.Sprintf("%q is a key of the configuration: change it there", name)}
	}
	recs, err := k.store.List(ctx)
	if err != nil && recs == nil {
		return limit.KeyRecord{}, err
	}
	for _, rec := range recs {
		if rec.Name == name {
			return rec, nil
		}
	}
	return limit.KeyRecord{}, limit.ErrKeyNotFound
}

func (k *runtimeKeys) get(w http.ResponseWriter, r *http.Request) error {
	rec, err := k.find(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, view(rec))
	return nil
}

func (k *runtimeKeys) patch(w http.ResponseWriter, r *http.Request) error {
	fields, err := readFields(r)
	if err != nil {
		return err
	}
	old, err := k.find(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	next := old
	next.Models = slices.Clone(old.Models)
	if err := applyFields(&next, fields, false); err != nil {
		return err
	}
	next.UpdatedAt = k.now().UTC().Truncate(time.Second)
	if err := next.Validate(); err != nil {
		return api.InvalidRequest("", "%v", err)
	}
	if err := k.store.Replace(r.Context(), old, next); err != nil {
		return err
	}
	k.sync(r.Context())
	k.audit(r, "key.update", next, slog.Any("fields", sortedKeys(fields)))
	writeJSON(w, view(next))
	return nil
}

func (k *runtimeKeys) remove(w http.ResponseWriter, r *http.Request) error {
	rec, err := k.find(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	if err := k.store.Delete(r.Context(), rec.Name); err != nil {
		return err
	}
	k.sync(r.Context())
	k.audit(r, "key.delete", rec)
	writeJSON(w, map[string]any{"deleted": rec.Name})
	return nil
}

func (k *runtimeKeys) rotate(w http.ResponseWriter, r *http.Request) error {
	old, err := k.find(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	secret := limit.NewSecret()
	next := old
	next.KeySHA256 = limit.Digest(secret)
	next.UpdatedAt = k.now().UTC().Truncate(time.Second)
	if err := k.store.Replace(r.Context(), old, next); err != nil {
		return err
	}
	k.sync(r.Context())
	k.audit(r, "key.rotate", next)
	writeJSON(w, createdKey{Key: secret, KeyRecord: view(next)})
	return nil
}

// audit writes one structured line per admin action: what was done to
// which key, by whom and from where; never a secret or a digest.
func (k *runtimeKeys) audit(r *http.Request, action string, rec limit.KeyRecord, attrs ...slog.Attr) {
	attrs = append(attrs, slog.String("key", rec.Name), slog.String("team", rec.Team))
	auditLine(k.logger, r, action, attrs...)
}

// audit is auditLine on the App's logger.
func (a *App) audit(r *http.Request, action string, attrs ...slog.Attr) {
	auditLine(a.logger.Logger, r, action, attrs...)
}

func auditLine(l *slog.Logger, r *http.Request, action string, attrs ...slog.Attr) {
	attrs = append([]slog.Attr{slog.Bool("audit", true), slog.String("action", action), slog.String("by", limit.AdminName),
		slog.String("remote", r.RemoteAddr), slog.String("request_id", r.Header.Get("X-Request-Id"))}, attrs...)
	l.LogAttrs(r.Context(), slog.LevelInfo, "admin action", attrs...)
}

// readFields reads a JSON object of at most 64 KiB, keeping which fields
// were sent (PATCH changes only those; null sets a field back to none).
func readFields(r *http.Request) (map[string]json.RawMessage, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10+1))
	if err != nil {
		return nil, api.InvalidRequest("", "cannot read the body: %v", err)
	}
	if len(b) > 64<<10 {
		return nil, &api.Error{Status: http.StatusRequestEntityTooLarge, Type: api.TypeInvalidRequest, Message: "body larger than 64 KiB"}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(bytes.TrimSpace(b), &fields); err != nil || fields == nil {
		return nil, api.InvalidRequest("", "the body must be a JSON object")
	}
	return fields, nil
}

// applyFields sets the fields of rec named in fields; an unknown field, a
// value of the wrong type or a rename is a 400 naming the field.
func applyFields(rec *limit.KeyRecord, fields map[string]json.RawMessage, creating bool) error {
	targets := map[string]any{
		"team": &rec.Team, "models": &rec.Models, "rpm": &rec.RPM, "tpm": &rec.TPM, "burst": &rec.Burst,
		"budget_daily_usd": &rec.BudgetDailyUSD, "budget_monthly_usd": &rec.BudgetMonthlyUSD,
		"expires_at": &rec.ExpiresAt, "cache_scope": &rec.CacheScope, "allow_cache_bypass": &rec.AllowCacheBypass,
		"show_cache_key": &rec.ShowCacheKey, "redact": &rec.Redact,
	}
	if creating {
		targets["name"] = &rec.Name
	}
	for _, name := range sortedKeys(fields) {
		dst, ok := targets[name]
		switch {
		case name == "name" && !creating:
			var n string
			if json.Unmarshal(fields[name], &n) != nil || n != rec.Name {
				return api.InvalidRequest(name, "a key cannot be renamed; create a new one")
			}
			continue
		case !ok:
			return api.InvalidRequest(name, "unknown field %q", name)
		}
		if string(fields[name]) == "null" {
			// Back to none: json leaves the target alone on null.
			reset(dst)
			continue
		}
		if err := json.Unmarshal(fields[name], dst); err != nil {
			return api.InvalidRequest(name, "%s: %v", name, err)
		}
	}
	if rec.ExpiresAt != nil {
		t := rec.ExpiresAt.UTC()
		rec.ExpiresAt = &t
	}
	if creating && rec.Name == "" {
		return api.InvalidRequest("name", "name: required")
	}
	return nil
}

func reset(dst any) {
	switch p := dst.(type) {
	case *string:
		*p = ""
	case *[]string:
		*p = nil
	case *int:
		*p = 0
	case *float64:
		*p = 0
	case *bool:
		*p = false
	case **bool:
		*p = nil
	case **time.Time:
		*p = nil
	}
}

func sortedKeys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
