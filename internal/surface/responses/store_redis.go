package responses

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// RedisPrefix is the key prefix of stored responses; it carries the
// record format's version.
const RedisPrefix = "edge-agent:responses:v1:"

// RedisStore is a Store in Redis, shared by every gateway instance: a
// response answered by one can be continued or read through another.
// Records expire with Redis's own TTL.
type RedisStore struct {
	client   rueidis.Client
	ttl      time.Duration
	maxEntry int
	timeout  time.Duration
}

// NewRedisStore connects to the Redis at url (redis:// or rediss://, or
// host:port; several comma-separated addresses select cluster mode).
// Records live ttl and are at most maxEntry bytes. It does not fail when
// Redis is down: calls fail (and the gateway answers 503 or skips the
// record) until it is back. Only a malformed URL is an error, and the
// error never repeats the URL, which may hold a password.
func NewRedisStore(rawURL string, ttl time.Duration, maxEntry int) (*RedisStore, error) {
	var opt rueidis.ClientOption
	n := 0
	for p := range strings.SplitSeq(rawURL, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !strings.Contains(p, "://") {
			p = "redis://" + p
		}
		po, err := rueidis.ParseURL(p)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, fmt.Errorf("responses store: address %d of the Redis URL is invalid: %w", n+1, err)
		}
		if n == 0 {
			opt = po
		} else {
			opt.InitAddress = append(opt.InitAddress, po.InitAddress...)
		}
		n++
	}
	if n == 0 {
		return nil, errors.New("responses store: the Redis URL is empty")
	}
	opt.ForceSingleClient = n == 1
	opt.DisableCache = true
	opt.Dialer.Timeout = time.Second
	opt.ClientName = "edge-agent-responses"
	cl, err := rueidis.NewClient(opt)
	if cl == nil {
		return nil, fmt.Errorf("responses store: %w", err)
	}
	return &RedisStore{client: cl, ttl: ttl, maxEntry: maxEntry, timeout: time.Second}, nil
}

// Close releases the connections.
func (s *RedisStore) Close() { s.client.Close() }

// key hashes the principal: keys stay short and never show a key's name.
func (s *RedisStore) key(principal, id string) string {
	h := sha256.Sum256([]byte(principal))
	return RedisPrefix + hex.EncodeToString(h[:12]) + ":" + id
}

// Get returns the principal's record id.
func (s *RedisStore) Get(ctx context.Context, principal, id string) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	b, err := s.client.Do(ctx, s.client.B().Get().Key(s.key(principal, id)).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("responses store: get: %w", err)
	}
	return b, true, nil
}

// Put stores rec for the store's TTL.
func (s *RedisStore) Put(ctx context.Context, principal, id string, rec []byte) error {
	if s.maxEntry > 0 && len(rec) > s.maxEntry {
		return ErrTooLarge
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmd := s.client.B().Set().Key(s.key(principal, id)).Value(rueidis.BinaryString(rec)).Px(s.ttl).Build()
	if err := s.client.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("responses store: set: %w", err)
	}
	return nil
}

// Delete removes the principal's record id.
func (s *RedisStore) Delete(ctx context.Context, principal, id string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	n, err := s.client.Do(ctx, s.client.B().Del().Key(s.key(principal, id)).Build()).AsInt64()
	if err != nil {
		return false, fmt.Errorf("responses store: del: %w", err)
	}
	return n > 0, nil
}
