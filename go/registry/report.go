package registry

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/levee-dev/levee/go"
)

// The report's size limits (the registry answers 400 beyond them).
const (
	maxReportKeys    = 1000
	maxReportBuckets = 3600
)

// pending holds the buckets not sent yet: per endpoint key, one bucket per Unix second.
// Recording takes only the key's own lock (keys are found through an immutable map swapped
// when a new key appears), so calls to different endpoints never contend. The total number of
// buckets is bounded: past the limit the oldest seconds are dropped first, since old counts
// matter least to a time window and memory must stay bounded however long an outage lasts.
type pending struct {
	keys    atomic.Pointer[map[string]*keyBuckets]
	addKey  sync.Mutex // serialises adding keys
	trim    sync.Mutex // serialises dropping the oldest buckets
	entries atomic.Int64
	dropped atomic.Uint64
	limit   int64
}

type keyBuckets struct {
	key     string
	mu      sync.Mutex
	buckets []bucket // ascending StartS
}

func newPending(limit int) *pending {
	p := &pending{limit: int64(limit)}
	m := map[string]*keyBuckets{}
	p.keys.Store(&m)
	return p
}

func (p *pending) forKey(key string) *keyBuckets {
	if kb, ok := (*p.keys.Load())[key]; ok {
		return kb
	}
	p.addKey.Lock()
	defer p.addKey.Unlock()
	old := *p.keys.Load()
	if kb, ok := old[key]; ok {
		return kb
	}
	m := make(map[string]*keyBuckets, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	kb := &keyBuckets{key: key}
	m[key] = kb
	p.keys.Store(&m)
	return kb
}

// add applies f to the bucket of key and second, creating it if needed, then enforces the
// limit.
func (p *pending) add(key string, second uint64, f func(*bucket)) {
	kb := p.forKey(key)
	kb.mu.Lock()
	created := kb.slot(second, f)
	kb.mu.Unlock()
	if created && p.entries.Add(1) > p.limit {
		p.enforce()
	}
}

// slot applies f to the bucket of second and reports whether it had to be created. Seconds
// almost always arrive in order, so the newest bucket is looked at first.
func (kb *keyBuckets) slot(second uint64, f func(*bucket)) bool {
	n := len(kb.buckets)
	if n > 0 && kb.buckets[n-1].StartS == second {
		f(&kb.buckets[n-1])
		return false
	}
	i := sort.Search(n, func(i int) bool { return kb.buckets[i].StartS >= second })
	if i < n && kb.buckets[i].StartS == second {
		f(&kb.buckets[i])
		return false
	}
	kb.buckets = append(kb.buckets, bucket{})
	copy(kb.buckets[i+1:], kb.buckets[i:])
	kb.buckets[i] = bucket{StartS: second}
	f(&kb.buckets[i])
	return true
}

// enforce drops the oldest seconds, across keys, until at most limit buckets remain.
func (p *pending) enforce() {
	p.trim.Lock()
	defer p.trim.Unlock()
	for p.entries.Load() > p.limit {
		var oldest *keyBuckets
		var second uint64
		for _, kb := range *p.keys.Load() {
			kb.mu.Lock()
			if len(kb.buckets) > 0 && (oldest == nil || kb.buckets[0].StartS < second) {
				oldest, second = kb, kb.buckets[0].StartS
			}
			kb.mu.Unlock()
		}
		if oldest == nil {
			return
		}
		oldest.mu.Lock()
		if len(oldest.buckets) > 0 && oldest.buckets[0].StartS == second {
			oldest.buckets = append(oldest.buckets[:0], oldest.buckets[1:]...)
			p.entries.Add(-1)
			p.dropped.Add(1)
		}
		oldest.mu.Unlock()
	}
}

// take removes and returns everything pending, keys in order.
func (p *pending) take() []endpointReport {
	var out []endpointReport
	for _, kb := range *p.keys.Load() {
		kb.mu.Lock()
		if len(kb.buckets) > 0 {
			out = append(out, endpointReport{Key: kb.key, Buckets: kb.buckets})
			p.entries.Add(-int64(len(kb.buckets)))
			kb.buckets = nil
		}
		kb.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// restore merges endpoints back (after a failed send), still bounded.
func (p *pending) restore(endpoints []endpointReport) {
	for _, e := range endpoints {
		for _, b := range e.Buckets {
			p.add(e.Key, b.StartS, func(dst *bucket) { dst.merge(b) })
		}
	}
}

// chunks splits endpoints into requests the registry accepts: at most maxReportKeys
// endpoint entries and maxReportBuckets buckets per entry.
func chunks(endpoints []endpointReport) [][]endpointReport {
	var out [][]endpointReport
	var cur []endpointReport
	for _, e := range endpoints {
		for start := 0; start < len(e.Buckets); start += maxReportBuckets {
			end := min(start+maxReportBuckets, len(e.Buckets))
			cur = append(cur, endpointReport{Key: e.Key, Buckets: e.Buckets[start:end]})
			if len(cur) == maxReportKeys {
				out = append(out, cur)
				cur = nil
			}
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// Record counts one call's outcome for the next report: endpointKey is the breaker's key, d
// the call's duration and slow whether it took at least the key's slow_call_duration. It only
// adds to an in-memory bucket per key and second (taking that key's lock for a moment) and
// never waits on the network; a background goroutine sends the buckets every ReportInterval.
// While the registry is unreachable buckets are kept up to MaxPendingBuckets, the oldest
// seconds dropped first.
func (c *Client) Record(endpointKey string, outcome levee.Outcome, d time.Duration, slow bool) {
	second := levee.WallTime(c.clock).Unix()
	if second < 0 {
		second = 0
	}
	ms := uint64(0)
	if d > 0 {
		ms = uint64(d / time.Millisecond)
	}
	c.pending.add(endpointKey, uint64(second), func(b *bucket) { b.add(outcome, ms, slow) })
}

// DroppedBuckets returns how many (key, second) buckets were dropped because the registry was
// unreachable for too long, or refused them.
func (c *Client) DroppedBuckets() uint64 { return c.pending.dropped.Load() }

// Flush sends the pending buckets now (shutdown, tests); the background goroutine does so every
// ReportInterval. When the registry cannot be reached (or answers 5xx or 429) the buckets stay
// pending and the error is returned; buckets it refuses as malformed (other 4xx) are dropped.
// It is not for request paths.
func (c *Client) Flush(ctx context.Context) error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	parts := chunks(c.pending.take())
	var refused error
	for i, endpoints := range parts {
		req := reportRequest{Service: c.service, Language: levee.Language, Instance: c.instance, Endpoints: endpoints}
		var resp reportResponse
		err := c.call(ctx, c.cfg.RequestTimeout, "POST", "/v1/reports", req, &resp)
		if err == nil {
			continue
		}
		if transient(err) {
			for _, rest := range parts[i:] {
				c.pending.restore(rest)
			}
			return err
		}
		n := 0
		for _, e := range endpoints {
			n += len(e.Buckets)
		}
		c.pending.dropped.Add(uint64(n))
		c.logWarn("the registry refused a report; its counts are dropped", "error", err)
		refused = err
	}
	return refused
}

// reportLoop sends the pending buckets every ReportInterval, waiting longer (jittered
// exponential backoff) after failures.
func (c *Client) reportLoop(ctx context.Context) {
	failures := 0
	for {
		wait := c.cfg.ReportInterval
		if failures > 0 {
			wait += c.backoff(failures)
		}
		if c.wait(ctx, waitReport, wait) != nil {
			return
		}
		c.refreshGauges()
		c.notifyChange() // fleet state may have gone stale since the last event
		if err := c.Flush(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			c.logDebug("registry report failed; buckets kept", "error", err)
		} else {
			failures = 0
		}
	}
}
