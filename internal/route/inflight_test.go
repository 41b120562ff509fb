package route

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/edge-agent/edge-agent/internal/provider"
)

func TestDefaultsHold20000ConcurrentCallsToOneDeployment(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		f := newFake("openai", func(_ context.Context, req *provider.Request, _ int64) (*provider.Response, error) {
			<-release
			return answerOK(req), nil
		})
		r, tg := oneProvider(t, f, Config{})
		const n = 20000
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				_, err := r.ChatCompletion(context.Background(), tg, chatReq("gpt-4o", false), nil)
				errs <- err
			})
		}
		synctest.Wait()
		if h := r.Health()[0]; h.Inflight != n {
			t.Fatalf("%d calls in flight at once, want all %d", h.Inflight, n)
		}
		close(release)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("a call among %d concurrent ones failed: %v", n, err)
			}
		}
		if g, d := r.Rejected(); g != 0 || d != 0 {
			t.Fatalf("Rejected() = %d, %d; want none", g, d)
		}
	})
}

func TestDeploymentMaxInflightIsTheCapOfDeploymentsThatSetNone(t *testing.T) {
	f := newFake("openai", nil)
	r := mustRouter(t, Config{DeploymentMaxInflight: 7,
		Providers: map[string]provider.Provider{"openai": f},
		Groups: []ModelGroup{{Name: "m", Deployments: []Deployment{
			{Name: "own", Provider: f, Model: "gpt-4o", MaxInflight: 3},
			{Name: "unset", Provider: f, Model: "gpt-4o"},
		}}}})
	got := map[string]int{}
	for _, h := range r.Health() {
		got[h.Name] = h.MaxInflight
	}
	if got["own"] != 3 || got["unset"] != 7 || got["openai"] != 7 {
		t.Fatalf("caps %v; want own 3, unset and the direct route 7", got)
	}
}

func TestInflightForFilesIsHalfTheFileLimitWithinBounds(t *testing.T) {
	for _, tc := range []struct {
		nofile uint64
		want   int
	}{
		{0, DefaultMaxInflight},
		{1024, DefaultMaxInflight},
		{40000, DefaultMaxInflight},
		{65536, 32768},
		{1048576, MaxInflightCap},
		{1 << 62, MaxInflightCap},
	} {
		if got := InflightForFiles(tc.nofile); got != tc.want {
			t.Errorf("InflightForFiles(%d) = %d, want %d", tc.nofile, got, tc.want)
		}
	}
}
