package responses

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

// storeContract is what every Store does.
func storeContract(t *testing.T, s Store) {
	t.Helper()
	ctx := context.Background()
	rec := encodeRecord([]byte(`{"id":"resp_1","object":"response"}`), []byte(`[]`))
	if err := s.Put(ctx, "alice", "resp_1", rec); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get(ctx, "alice", "resp_1")
	if err != nil || !ok || string(got) != string(rec) {
		t.Fatalf("Get = %s %v %v", got, ok, err)
	}
	if _, ok, _ := s.Get(ctx, "bob", "resp_1"); ok {
		t.Error("another principal read alice's response")
	}
	if deleted, _ := s.Delete(ctx, "bob", "resp_1"); deleted {
		t.Error("another principal deleted alice's response")
	}
	if deleted, err := s.Delete(ctx, "alice", "resp_1"); !deleted || err != nil {
		t.Errorf("Delete = %v %v", deleted, err)
	}
	if _, ok, _ := s.Get(ctx, "alice", "resp_1"); ok {
		t.Error("a deleted response is still there")
	}
	if deleted, _ := s.Delete(ctx, "alice", "resp_1"); deleted {
		t.Error("a second delete reported a deletion")
	}
}

func TestMemoryStoreKeepsResponsesPerPrincipal(t *testing.T) {
	storeContract(t, NewMemoryStore(time.Hour, 1<<20, 0))
}

func TestMemoryStoreForgetsAfterItsTTL(t *testing.T) {
	s := NewMemoryStore(time.Minute, 1<<20, 0)
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	_ = s.Put(context.Background(), "a", "r1", []byte("x"))
	now = now.Add(59 * time.Second)
	if _, ok, _ := s.Get(context.Background(), "a", "r1"); !ok {
		t.Error("forgotten before its TTL")
	}
	now = now.Add(2 * time.Second)
	if _, ok, _ := s.Get(context.Background(), "a", "r1"); ok {
		t.Error("kept past its TTL")
	}
	if s.Len() != 0 {
		t.Errorf("an expired record is still held (%d)", s.Len())
	}
}

func TestMemoryStoreDropsTheOldestPastItsByteBound(t *testing.T) {
	s := NewMemoryStore(time.Hour, 30, 0)
	ctx := context.Background()
	for _, id := range []string{"r1", "r2", "r3"} {
		if err := s.Put(ctx, "a", id, []byte(strings.Repeat("x", 10))); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.Put(ctx, "a", "r4", []byte(strings.Repeat("x", 10)))
	if _, ok, _ := s.Get(ctx, "a", "r1"); ok {
		t.Error("the oldest record survived past the bound")
	}
	for _, id := range []string{"r2", "r3", "r4"} {
		if _, ok, _ := s.Get(ctx, "a", id); !ok {
			t.Errorf("%s was dropped", id)
		}
	}
	if err := s.Put(ctx, "a", "big", make([]byte, 31)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a record over the bound: %v", err)
	}
}

func TestRedisStoreKeepsResponsesPerPrincipalAcrossClients(t *testing.T) {
	srv := redistest.Start(t)
	a, err := NewRedisStore(srv.URL(), time.Hour, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	storeContract(t, a)

	b, err := NewRedisStore(srv.URL(), time.Hour, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := a.Put(ctx, "alice", "resp_2", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.Get(ctx, "alice", "resp_2"); !ok || err != nil {
		t.Errorf("a second instance does not see the response: %v %v", ok, err)
	}
	if err := a.Put(ctx, "alice", "big", make([]byte, 2<<20)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a record over the entry bound: %v", err)
	}
}

func TestRedisStoreRecordsExpire(t *testing.T) {
	srv := redistest.Start(t)
	s, err := NewRedisStore(srv.URL(), 50*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	_ = s.Put(ctx, "a", "r", []byte("x"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, ok, err := s.Get(ctx, "a", "r")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the record outlived its TTL")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRedisStoreURLErrorsHideThePassword(t *testing.T) {
	_, err := NewRedisStore("redis://user:s3cret@[::1", time.Hour, 0)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("err = %v", err)
	}
}

func TestRedisStoreDownIsAnError(t *testing.T) {
	srv := redistest.Start(t)
	s, err := NewRedisStore(srv.URL(), time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv.Stop()
	if _, _, err := s.Get(context.Background(), "a", "r"); err == nil {
		t.Error("Get on a stopped Redis reported a miss, not an error")
	}
}
