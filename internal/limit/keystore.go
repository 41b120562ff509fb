package limit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/redis/rueidis"
)

// KeyStore keeps the records of runtime keys. Version changes with every
// write, so an instance polls it cheaply and lists the keys only when
// something changed.
type KeyStore interface {
	List(ctx context.Context) ([]KeyRecord, error)
	// Create adds rec; ErrKeyExists if its name is taken.
	Create(ctx context.Context, rec KeyRecord) error
	// Replace writes next over old, both of one name, only if the stored
	// record is still old (ErrKeyChanged otherwise, ErrKeyNotFound if gone).
	Replace(ctx context.Context, old, next KeyRecord) error
	// Delete removes the key called name; ErrKeyNotFound if there is none.
	Delete(ctx context.Context, name string) error
	Version(ctx context.Context) (int64, error)
}

// FileKeyStore keeps runtime keys in a JSON file, for a single instance
// without Redis. Every write replaces the file atomically (write, sync,
// rename), so a crash leaves the old or the new file, never half of one.
type FileKeyStore struct {
	path    string
	mu      sync.Mutex
	keys    map[string]KeyRecord
	version int64
}

type keyFile struct {
	Keys []KeyRecord `json:"keys"`
}

// OpenFileKeyStore loads path, or starts empty if it does not exist yet.
func OpenFileKeyStore(path string) (*FileKeyStore, error) {
	s := &FileKeyStore{path: path, keys: map[string]KeyRecord{}, version: 1}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keys file: %w", err)
	}
	var f keyFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("keys file %s: %w", path, err)
	}
	for _, k := range f.Keys {
		s.keys[k.Name] = k
	}
	return s, nil
}

// List implements KeyStore.
func (s *FileKeyStore) List(context.Context) ([]KeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sorted(), nil
}

func (s *FileKeyStore) sorted() []KeyRecord {
	out := make([]KeyRecord, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b KeyRecord) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Create implements KeyStore.
func (s *FileKeyStore) Create(_ context.Context, rec KeyRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[rec.Name]; ok {
		return ErrKeyExists
	}
	return s.write(rec.Name, &rec)
}

// Replace implements KeyStore.
func (s *FileKeyStore) Replace(_ context.Context, old, next KeyRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.keys[old.Name]
	if !ok {
		return ErrKeyNotFound
	}
	if !sameRecord(cur, old) {
		return ErrKeyChanged
	}
	return s.write(old.Name, &next)
}

// Delete implements KeyStore.
func (s *FileKeyStore) Delete(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[name]; !ok {
		return ErrKeyNotFound
	}
	return s.write(name, nil)
}

// Version implements KeyStore.
func (s *FileKeyStore) Version(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version, nil
}

// write sets (rec != nil) or deletes name and writes the file; on failure
// the store is left as it was. s.mu is held.
func (s *FileKeyStore) write(name string, rec *KeyRecord) error {
	prev, had := s.keys[name]
	if rec != nil {
		s.keys[name] = *rec
	} else {
		delete(s.keys, name)
	}
	if err := s.flush(); err != nil {
		if had {
			s.keys[name] = prev
		} else {
			delete(s.keys, name)
		}
		return err
	}
	s.version++
	return nil
}

func (s *FileKeyStore) flush() error {
	b, err := json.MarshalIndent(keyFile{Keys: s.sorted()}, "", "  ")
	if err != nil {
		return fmt.Errorf("keys file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), filepath.Base(s.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("keys file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("keys file: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("keys file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("keys file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keys file: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("keys file: %w", err)
	}
	return nil
}

func sameRecord(a, b KeyRecord) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// RedisKeyStore keeps runtime keys in Redis, shared by every instance: one
// hash of name -> record (JSON) and a version counter bumped by every
// write, in one slot (hash tag) so each write is one atomic script.
type RedisKeyStore struct {
	client  rueidis.Client
	hash    string
	version string
}

// NewRedisKeyStore returns a store on client; prefix "" is
// "{llm-edge:keys}".
func NewRedisKeyStore(client rueidis.Client, prefix string) *RedisKeyStore {
	if prefix == "" {
		prefix = "{llm-edge:keys}"
	}
	return &RedisKeyStore{client: client, hash: prefix, version: prefix + ":version"}
}

// keyWriteScript: ARGV[1] is the operation: "create" (HSETNX ARGV[2] =
// ARGV[3]), "replace" (ARGV[2] = ARGV[4] if it is still ARGV[3]) or
// "delete" (ARGV[2]). It returns 1 when it wrote (and bumped the version),
// 0 when the name exists (create) or the record changed (replace), -1 when
// there is no such key.
var keyWriteScript = rueidis.NewLuaScript(`
local op = ARGV[1]
if op == 'create' then
  if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) == 0 then return 0 end
elseif op == 'replace' then
  local cur = redis.call('HGET', KEYS[1], ARGV[2])
  if not cur then return -1 end
  if cur ~= ARGV[3] then return 0 end
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[4])
else
  if redis.call('HDEL', KEYS[1], ARGV[2]) == 0 then return -1 end
end
redis.call('INCR', KEYS[2])
return 1
`)

func (s *RedisKeyStore) exec(ctx context.Context, args ...string) (int64, error) {
	n, err := keyWriteScript.Exec(ctx, s.client, []string{s.hash, s.version}, args).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("redis keys %s: %w", args[0], err)
	}
	return n, nil
}

// List implements KeyStore.
func (s *RedisKeyStore) List(ctx context.Context) ([]KeyRecord, error) {
	m, err := s.client.Do(ctx, s.client.B().Hgetall().Key(s.hash).Build()).AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("redis keys list: %w", err)
	}
	out := make([]KeyRecord, 0, len(m))
	var errs []error
	for name, v := range m {
		var r KeyRecord
		if err := json.Unmarshal([]byte(v), &r); err != nil || r.Name != name {
			errs = append(errs, fmt.Errorf("redis keys: record %q is not a key record", name))
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b KeyRecord) int { return strings.Compare(a.Name, b.Name) })
	return out, errors.Join(errs...)
}

// Create implements KeyStore.
func (s *RedisKeyStore) Create(ctx context.Context, rec KeyRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	n, err := s.exec(ctx, "create", rec.Name, string(b))
	if err == nil && n == 0 {
		err = ErrKeyExists
	}
	return err
}

// Replace implements KeyStore.
func (s *RedisKeyStore) Replace(ctx context.Context, old, next KeyRecord) error {
	ob, err := json.Marshal(old)
	if err != nil {
		return err
	}
	nb, err := json.Marshal(next)
	if err != nil {
		return err
	}
	n, err := s.exec(ctx, "replace", old.Name, string(ob), string(nb))
	switch {
	case err != nil:
		return err
	case n == 0:
		return ErrKeyChanged
	case n < 0:
		return ErrKeyNotFound
	}
	return nil
}

// Delete implements KeyStore.
func (s *RedisKeyStore) Delete(ctx context.Context, name string) error {
	n, err := s.exec(ctx, "delete", name)
	if err == nil && n < 0 {
		err = ErrKeyNotFound
	}
	return err
}

// Version implements KeyStore.
func (s *RedisKeyStore) Version(ctx context.Context) (int64, error) {
	n, err := s.client.Do(ctx, s.client.B().Get().Key(s.version).Build()).AsInt64()
	if rueidis.IsRedisNil(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redis keys version: %w", err)
	}
	return n, nil
}
