package pgstore

import (
	"math"
	"math/rand/v2"
	"sync"

	"github.com/authflow/authflow/flow"
)

// flowCacheSize bounds how many flows a Store keeps decoded: a few
// seconds of logins at the rates one instance serves, about 3 kB each.
const flowCacheSize = 4096

// flowCache keeps the flows this Store wrote or read last, decoded, each
// with the write tag and version of the row it matches. A read names the
// tag and version it holds and gets the row's record only when another
// write (on any instance) replaced it, so that the flow an instance just
// created or updated is read back without sending or decoding its record.
// It only saves work: the row, read in the same statement, decides every
// answer. Every write of a flow increments its version, including those
// of an older pgstore that leaves the tag as it was (during a rolling
// upgrade), and every write by this one makes a new random tag, including
// after a crash undid a write and its version number is reused.
type flowCache struct {
	mu      sync.Mutex
	entries map[string]cachedFlow
}

// cachedFlow is a flow as stored by the write with tag (rec.Version is the
// version it made).
type cachedFlow struct {
	tag int64
	rec *flow.Record
}

func newFlowCache() *flowCache {
	return &flowCache{entries: make(map[string]cachedFlow)}
}

// newWriteTag returns a tag for a write of a flow: random, never 0.
func newWriteTag() int64 { return rand.Int64N(math.MaxInt64) + 1 }

// held returns the tag and version of the cached flow with id, or nils.
func (c *flowCache) held(id string) (tag, version *int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok {
		return nil, nil
	}
	t, v := e.tag, e.rec.Version
	return &t, &v
}

// get returns a copy of the cached flow with id if its tag and version are
// these.
func (c *flowCache) get(id string, tag, version int64) (*flow.Record, bool) {
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if !ok || e.tag != tag || e.rec.Version != version {
		return nil, false
	}
	return e.rec.Clone(), true // cached records are never changed
}

// put keeps a copy of rec as stored by the write with tag.
func (c *flowCache) put(id string, tag int64, rec *flow.Record) {
	cp := rec.Clone()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[id]; !ok && len(c.entries) >= flowCacheSize {
		for k := range c.entries { // any one: map order is unspecified
			delete(c.entries, k)
			break
		}
	}
	c.entries[id] = cachedFlow{tag: tag, rec: cp}
}

// forget drops the copy of the flow with id.
func (c *flowCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, id)
}
