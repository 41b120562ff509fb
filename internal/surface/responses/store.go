package responses

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/tidwall/gjson"
)

// Store keeps the responses the gateway answered, each with the input
// items it was given, scoped to a principal (the client key): a principal
// sees only its own, and another's id reads as absent. Records are opaque
// bytes (see encodeRecord). Implementations are safe for concurrent use.
type Store interface {
	Get(ctx context.Context, principal, id string) (record []byte, ok bool, err error)
	Put(ctx context.Context, principal, id string, record []byte) error
	Delete(ctx context.Context, principal, id string) (deleted bool, err error)
}

// ErrTooLarge is returned by Put for a record over the store's entry bound.
var ErrTooLarge = errors.New("responses store: record larger than the entry bound")

// encodeRecord is a stored response: {"response":...,"input_items":[...]}.
func encodeRecord(response, inputItems []byte) []byte {
	b := make([]byte, 0, len(response)+len(inputItems)+32)
	b = append(b, `{"response":`...)
	b = append(b, response...)
	b = append(b, `,"input_items":`...)
	b = append(b, inputItems...)
	return append(b, '}')
}

// decodeRecord returns a record's response and input items (raw JSON).
func decodeRecord(rec []byte) (response, inputItems gjson.Result, ok bool) {
	if !gjson.ValidBytes(rec) {
		return response, inputItems, false
	}
	root := gjson.ParseBytes(rec)
	response, inputItems = root.Get("response"), root.Get("input_items")
	return response, inputItems, response.IsObject() && inputItems.IsArray()
}

// MemoryStore is a Store in this process's memory, for a gateway without
// Redis: records expire after a TTL, and past a byte bound the oldest are
// dropped first.
type MemoryStore struct {
	ttl      time.Duration
	maxBytes int
	maxEntry int
	now      func() time.Time
	mu       sync.Mutex
	entries  map[memKey]*list.Element
	order    *list.List // of *memEntry, oldest first
	bytes    int
}

type memKey struct{ principal, id string }

type memEntry struct {
	key     memKey
	rec     []byte
	expires time.Time
}

// NewMemoryStore returns a store whose records live ttl, holding at most
// maxBytes of records in all and maxEntry in one (0: maxBytes).
func NewMemoryStore(ttl time.Duration, maxBytes, maxEntry int) *MemoryStore {
	if maxEntry <= 0 || maxEntry > maxBytes {
		maxEntry = maxBytes
	}
	return &MemoryStore{ttl: ttl, maxBytes: maxBytes, maxEntry: maxEntry, now: time.Now,
		entries: make(map[memKey]*list.Element), order: list.New()}
}

// Get returns the principal's record id.
func (s *MemoryStore) Get(_ context.Context, principal, id string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.entries[memKey{principal, id}]
	if !ok {
		return nil, false, nil
	}
	e := el.Value.(*memEntry)
	if !s.now().Before(e.expires) {
		s.remove(el)
		return nil, false, nil
	}
	return e.rec, true, nil
}

// Put stores rec (which the store keeps: the caller must not change it).
func (s *MemoryStore) Put(_ context.Context, principal, id string, rec []byte) error {
	if len(rec) > s.maxEntry {
		return ErrTooLarge
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := memKey{principal, id}
	if el, ok := s.entries[k]; ok {
		s.remove(el)
	}
	now := s.now()
	for s.bytes+len(rec) > s.maxBytes {
		oldest := s.order.Front()
		if oldest == nil {
			break
		}
		s.remove(oldest)
	}
	// Expired records ahead of the queue go too (all records live as long).
	for el := s.order.Front(); el != nil && !now.Before(el.Value.(*memEntry).expires); el = s.order.Front() {
		s.remove(el)
	}
	s.entries[k] = s.order.PushBack(&memEntry{key: k, rec: rec, expires: now.Add(s.ttl)})
	s.bytes += len(rec)
	return nil
}

// Delete removes the principal's record id.
func (s *MemoryStore) Delete(_ context.Context, principal, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.entries[memKey{principal, id}]
	if !ok {
		return false, nil
	}
	live := s.now().Before(el.Value.(*memEntry).expires)
	s.remove(el)
	return live, nil
}

// Len is the number of records held, expired ones not yet dropped included.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

func (s *MemoryStore) remove(el *list.Element) {
	e := s.order.Remove(el).(*memEntry)
	delete(s.entries, e.key)
	s.bytes -= len(e.rec)
}
