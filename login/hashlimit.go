package login

import (
	"context"

	"github.com/authflow/authflow/login/password"
)

// limitedHasher runs a hasher behind a concurrency limit: at most n hashes
// are computed at once, and callers queue for a slot (or give up when their
// context ends). argon2id takes 64 MiB per hash by default, so a login storm
// queues instead of exhausting memory.
type limitedHasher struct {
	inner password.Hasher
	slots chan struct{}
}

func newLimitedHasher(inner password.Hasher, n int) *limitedHasher {
	return &limitedHasher{inner: inner, slots: make(chan struct{}, n)}
}

// acquire waits for a slot; it returns ctx's error if ctx ends first.
func (h *limitedHasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *limitedHasher) release() { <-h.slots }

func (h *limitedHasher) Hash(ctx context.Context, secret []byte) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return h.inner.Hash(ctx, secret)
}

func (h *limitedHasher) Compare(ctx context.Context, secret []byte, encoded string) error {
	if err := h.acquire(ctx); err != nil {
		return err
	}
	defer h.release()
	return h.inner.Compare(ctx, secret, encoded)
}

func (h *limitedHasher) NeedsRehash(encoded string) bool { return h.inner.NeedsRehash(encoded) }
