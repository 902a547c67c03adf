package login_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/password"
	"github.com/authflow/authflow/session"
)

// inFlightHasher records how many comparisons run at once; each takes a
// moment so that they overlap.
type inFlightHasher struct {
	inner    password.Hasher
	now, max atomic.Int32
	calls    atomic.Int32
}

func (h *inFlightHasher) Hash(ctx context.Context, p []byte) (string, error) {
	return h.inner.Hash(ctx, p)
}

func (h *inFlightHasher) Compare(ctx context.Context, p []byte, enc string) error {
	h.calls.Add(1)
	n := h.now.Add(1)
	for {
		m := h.max.Load()
		if n <= m || h.max.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(2 * time.Millisecond) // a stand-in for the hash's cost
	h.now.Add(-1)
	return h.inner.Compare(ctx, p, enc)
}

func (h *inFlightHasher) NeedsRehash(enc string) bool { return h.inner.NeedsRehash(enc) }

func TestHashingIsBoundedUnderAStorm(t *testing.T) {
	hasher := &inFlightHasher{}
	e := newEnv(t, func(c *login.Config) {
		hasher.inner = c.Hasher
		c.Hasher = hasher
		c.MaxConcurrentHashes = 3
		c.DisableThrottling = true
	})
	const logins = 200
	flows := make([]string, logins)
	for i := range flows {
		flows[i] = e.apiFlow("").ID
	}
	var wg sync.WaitGroup
	statuses := make([]int, logins)
	for i := range logins {
		wg.Go(func() {
			pw := testPassword
			if i%2 == 1 {
				pw = "wrong"
			}
			statuses[i] = e.submitJSON(e.api(), flows[i], credentials(testIdentifier, pw, ""), nil).status
		})
	}
	wg.Wait()
	for i, s := range statuses {
		want := http.StatusOK
		if i%2 == 1 {
			want = http.StatusBadRequest
		}
		require.Equal(t, want, s, "login %d", i)
	}
	assert.EqualValues(t, logins, hasher.calls.Load())
	assert.LessOrEqual(t, hasher.max.Load(), int32(3), "never more hashes at once than the limit")
	assert.Equal(t, int32(3), hasher.max.Load(), "the storm did use every slot")
}

// blockingHasher holds every comparison until released.
type blockingHasher struct {
	password.Hasher
	started chan struct{}
	release chan struct{}
	calls   atomic.Int32
}

func (h *blockingHasher) Compare(ctx context.Context, p []byte, enc string) error {
	h.calls.Add(1)
	h.started <- struct{}{}
	<-h.release
	return h.Hasher.Compare(ctx, p, enc)
}

func TestWaitingForAHashSlotEndsWithTheRequest(t *testing.T) {
	hasher := &blockingHasher{started: make(chan struct{}, 1), release: make(chan struct{})}
	e := newEnv(t, func(c *login.Config) {
		hasher.Hasher = c.Hasher
		c.Hasher = hasher
		c.MaxConcurrentHashes = 1
	})
	first, second := e.apiFlow("").ID, e.apiFlow("").ID
	body := `{"method":"password","identifier":"alice@example.com","password":"correct horse battery staple"}`

	done := make(chan int, 1)
	go func() {
		done <- e.submitJSON(e.api(), first, credentials(testIdentifier, testPassword, ""), nil).status
	}()
	<-hasher.started // the only slot is taken

	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/self-service/login?flow="+second, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	served := make(chan struct{})
	go func() { e.h.ServeHTTP(w, req); close(served) }()
	time.Sleep(20 * time.Millisecond) // let it queue for the slot
	cancel()
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("a request whose context ended kept waiting for a hash slot")
	}
	assert.Equal(t, int32(1), hasher.calls.Load(), "the canceled request computed no hash")
	assert.Equal(t, http.StatusInternalServerError, w.Code)

	close(hasher.release)
	assert.Equal(t, http.StatusOK, <-done, "the first login completes")
	list, err := e.sessions.ListSessions(context.Background(), e.identity.ID)
	require.NoError(t, err)
	assert.Len(t, list, 1, "only the first login made a session")
}

// BenchmarkLoginStorm sends 200 logins at once with argon2id at its default
// 64 MiB and reports the peak heap: the hashing limit keeps it near
// MaxConcurrentHashes × 64 MiB, instead of 200 × 64 MiB. It fails if the
// peak exceeds twice the limit's share plus 128 MiB.
//
//	go test ./login -run '^$' -bench LoginStorm -benchtime 1x
func BenchmarkLoginStorm(b *testing.B) {
	const logins = 200
	hasher := password.Argon2id{} // 64 MiB, t=3, p=4
	ctx := context.Background()
	ids := session.NewMemoryIdentityStore()
	cred, err := login.NewPasswordCredential(ctx, hasher, testIdentifier, testPassword)
	require.NoError(b, err)
	require.NoError(b, ids.CreateIdentity(ctx, &session.Identity{ID: "8b59d370-e415-441a-9116-b8d780619e54", State: session.StateActive, Traits: json.RawMessage(`{}`)}, cred))
	h, err := login.New(login.Config{
		PublicURL: "https://auth.example.com", LoginUIURL: loginUI, ErrorUIURL: errorUI, DefaultReturnURL: defaultReturn,
		IdentityStore: ids, Hasher: hasher, Logger: discardLogger(), DisableThrottling: true,
	})
	require.NoError(b, err)
	limit := runtime.NumCPU()

	for b.Loop() {
		flows := make([]string, logins)
		for i := range flows {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, benchRequest(http.MethodGet, "/self-service/login/api", nil))
			flows[i] = flowID(b, w)
		}
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)

		var peak atomic.Uint64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			var m runtime.MemStats
			for {
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		start := time.Now()
		var wg sync.WaitGroup
		latencies := make([]time.Duration, logins)
		for i := range logins {
			wg.Go(func() {
				t0 := time.Now()
				req := benchRequest(http.MethodPost, "/self-service/login?flow="+flows[i],
					strings.NewReader(`{"method":"password","identifier":"alice@example.com","password":"correct horse battery staple"}`))
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Errorf("login %d: %d %s", i, w.Code, w.Body)
				}
				latencies[i] = time.Since(t0)
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		close(stop)
		<-sampled

		sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
		peakMiB := float64(peak.Load()-min(peak.Load(), base.HeapInuse)) / (1 << 20)
		b.ReportMetric(peakMiB, "peak-heap-MiB")
		b.ReportMetric(float64(limit), "hash-slots")
		b.ReportMetric(elapsed.Seconds(), "storm-s")
		b.ReportMetric(latencies[logins/2].Seconds(), "median-login-s")
		if bound := float64(2*limit*64 + 128); peakMiB > bound {
			b.Fatalf("peak heap %.0f MiB above the bound %.0f MiB", peakMiB, bound)
		}
	}
}
