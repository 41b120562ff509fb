package cache

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestGroupCoalescesConcurrentMissesIntoOneLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group
		k := Key{1}
		want := sampleEntry()
		const n = 50
		var (
			mu       sync.Mutex
			leaders  int
			received int
			wg       sync.WaitGroup
		)
		start := make(chan struct{})
		for range n {
			wg.Go(func() {
				<-start
				c, leader := g.Join(k)
				if leader {
					mu.Lock()
					leaders++
					mu.Unlock()
					defer c.Finish(nil)
					time.Sleep(10 * time.Millisecond) // the upstream call
					c.Finish(want)
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				if e, ok := c.Wait(ctx); ok && e == want {
					mu.Lock()
					received++
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		if leaders != 1 || received != n-1 {
			t.Fatalf("leaders = %d, followers with the entry = %d; want 1 and %d", leaders, received, n-1)
		}
		if g.Len() != 0 {
			t.Fatalf("%d calls left in the group", g.Len())
		}
	})
}

func TestGroupReleasesFollowersWhenLeaderFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group
		k := Key{2}
		leader, isLeader := g.Join(k)
		if !isLeader {
			t.Fatal("first Join is not the leader")
		}
		results := make(chan bool, 10)
		for range 10 {
			c, isLeader := g.Join(k)
			if isLeader {
				t.Fatal("second Join is a leader while the first is in flight")
			}
			go func() {
				_, ok := c.Wait(context.Background())
				results <- ok
			}()
		}
		synctest.Wait()
		leader.Finish(nil) // upstream failed or the answer is not cacheable
		for range 10 {
			if <-results {
				t.Fatal("follower got an entry from a failed leader")
			}
		}
		if _, isLeader := g.Join(k); !isLeader {
			t.Fatal("after the leader finished, the next Join should lead a new call")
		}
	})
}

func TestGroupFollowerWaitIsBoundedByItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group
		leader, _ := g.Join(Key{3})
		follower, _ := g.Join(Key{3})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		begin := time.Now()
		if _, ok := follower.Wait(ctx); ok {
			t.Fatal("Wait succeeded although the leader never finished")
		}
		if waited := time.Since(begin); waited != 2*time.Second {
			t.Fatalf("waited %v, want the 2s deadline", waited)
		}
		leader.Finish(sampleEntry())
		leader.Finish(nil) // a deferred second Finish is harmless
		if e, ok := follower.Wait(context.Background()); !ok || e == nil {
			t.Fatal("the first Finish must win over the later one")
		}
	})
}

func TestFollowersGetTheLeadersUpstreamError(t *testing.T) {
	var g Group
	k := Key{1}
	lead, _ := g.Join(k)
	follow, leader := g.Join(k)
	if leader {
		t.Fatal("second Join leads")
	}
	upstream := errors.New("upstream 503")
	lead.Fail(context.Background(), upstream)
	lead.Finish(nil) // the leader's deferred Finish changes nothing
	if e, ok := follow.Wait(context.Background()); ok || e != nil {
		t.Fatalf("Wait after a failure = %v, %v", e, ok)
	}
	if err := follow.Err(); !errors.Is(err, upstream) {
		t.Fatalf("Err = %v, want the leader's error", err)
	}
	if g.Len() != 0 {
		t.Fatalf("%d calls left in flight", g.Len())
	}
}

func TestALeaderWhoseClientLeftPublishesNoError(t *testing.T) {
	var g Group
	k := Key{2}
	lead, _ := g.Join(k)
	follow, _ := g.Join(k)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	lead.Fail(gone, context.Canceled)
	select {
	case <-follow.Done():
		t.Fatal("the leader's own cancellation ended the call")
	default:
	}
	if follow.Err() != nil {
		t.Fatal("Err set before the call finished")
	}
	lead.Finish(nil)
	if _, ok := follow.Wait(context.Background()); ok || follow.Err() != nil {
		t.Fatalf("follower must make its own call: ok %v err %v", ok, follow.Err())
	}
	var none *Call
	none.Fail(context.Background(), errors.New("x")) // no coalescing: nothing to do
}
