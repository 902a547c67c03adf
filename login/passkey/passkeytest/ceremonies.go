package passkeytest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authflow/authflow/login/passkey"
)

// TestCeremonyStore checks that s keeps passkey.CeremonyStore's contract:
// a ceremony is returned once, replaced by a later put, refused once
// expired, and of concurrent takes exactly one gets it. Keys are made
// unique per call, so s may hold other data.
func TestCeremonyStore(t *testing.T, s passkey.CeremonyStore) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	prefix := "conformance:" + now.Format(time.RFC3339Nano) + ":" + t.Name() + ":"

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	take := func(key string, at time.Time) ([]byte, error) {
		t.Helper()
		return s.TakeCeremony(ctx, prefix+key, at)
	}

	must(s.PutCeremony(ctx, prefix+"a", []byte("first"), now.Add(time.Minute)))
	must(s.PutCeremony(ctx, prefix+"a", []byte("second"), now.Add(time.Minute)))
	got, err := take("a", now)
	if err != nil || string(got) != "second" {
		t.Fatalf("take after a replacing put = %q, %v; want \"second\"", got, err)
	}
	if _, err := take("a", now); !errors.Is(err, passkey.ErrNoCeremony) {
		t.Fatalf("second take = %v; want ErrNoCeremony", err)
	}
	if _, err := take("never", now); !errors.Is(err, passkey.ErrNoCeremony) {
		t.Fatalf("take of an unknown key = %v; want ErrNoCeremony", err)
	}

	must(s.PutCeremony(ctx, prefix+"b", []byte("x"), now.Add(time.Minute)))
	if _, err := take("b", now.Add(time.Minute)); !errors.Is(err, passkey.ErrNoCeremony) {
		t.Fatalf("take at the expiry = %v; want ErrNoCeremony", err)
	}

	must(s.PutCeremony(ctx, prefix+"c", []byte("once"), now.Add(time.Minute)))
	var (
		wg  sync.WaitGroup
		won atomic.Int32
	)
	for range 32 {
		wg.Go(func() {
			got, err := s.TakeCeremony(ctx, prefix+"c", now)
			switch {
			case err == nil && string(got) == "once":
				won.Add(1)
			case !errors.Is(err, passkey.ErrNoCeremony):
				t.Errorf("concurrent take = %q, %v", got, err)
			}
		})
	}
	wg.Wait()
	if n := won.Load(); n != 1 {
		t.Fatalf("%d of 32 concurrent takes got the ceremony; want exactly 1", n)
	}
}
