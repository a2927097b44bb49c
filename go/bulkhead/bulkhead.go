// Package bulkhead is Levee's bulkhead (SPEC §3), a port of levee-core's bulkhead and adaptive
// modules proved identical by the conformance vectors. It bounds the concurrent calls of one
// partition (an upstream or a route), queues the excess briefly, and sheds the least critical
// calls first.
//
//   - Limit: max_concurrent, or the current value of the adaptive limit when one is set.
//   - Admission: a call of class c is admitted while the total in flight is below
//     max(1, floor(limit × shares[c] / 100)) (integer arithmetic).
//   - Queue: a call that is not admitted waits if max_queue > 0 and the queue has room.
//     Waiting calls are ordered by class (critical first), then arrival.
//   - Eviction: when the queue is full, the arrival evicts the newest waiting call of the
//     lowest class strictly lower than its own; with none, the arrival is rejected (full).
//   - Timeout: a waiting call's deadline is enqueued_at + max_wait; at or after it the call
//     is rejected (queue_timeout). ExpireWaiting does this, and so does every other operation
//     that knows the time, before it decides anything else.
//   - Grants: whenever a slot frees, the head of the queue gets it if its class admits it,
//     repeated while that holds. A granted call's slot counts from the grant.
//   - Rejections: full, queue_timeout and evicted are the reason label of
//     levee_bulkhead_rejections_total; all are the outcome rejected with code bulkhead_full.
//   - Samples: Permit.Complete with success, failure or timeout feeds the adaptive limit
//     (round trip = time holding the slot, in-flight count at admission, dropped = failure
//     or timeout); other outcomes and Release teach it nothing.
//   - Time: every decision takes now; the bulkhead remembers the latest now it was given and
//     uses it when a caller passes an earlier one.
//
// The pure core is TryAcquire(class, now), Permit.Complete/Release and QueuedCall.TryTake;
// Allow(ctx) is the two-step form for callers, which waits in the queue on the injected clock.
package bulkhead

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/levee-dev/levee/go"
)

// RejectReason is the reason label of a bulkhead rejection.
type RejectReason uint8

const (
	// Full: no slot for the call's class and no room in the queue (or no queue).
	Full RejectReason = iota
	// QueueTimeout: the call waited max_wait in the queue without getting a slot.
	QueueTimeout
	// Evicted: a more critical call arrived at a full queue and took this call's place.
	Evicted
)

// RejectReasons lists every reason.
var RejectReasons = [...]RejectReason{Full, QueueTimeout, Evicted}

// String returns the metric label and vector spelling: full, queue_timeout, evicted.
func (r RejectReason) String() string {
	switch r {
	case QueueTimeout:
		return "queue_timeout"
	case Evicted:
		return "evicted"
	}
	return "full"
}

// Rejection is a call the bulkhead refused: the outcome rejected with code bulkhead_full.
type Rejection struct {
	Reason RejectReason
	Class  levee.Criticality // the refused call's class (the criticality metric label)
}

// Error says what happened and what to do, in levee-core's words.
func (r *Rejection) Error() string {
	switch r.Reason {
	case QueueTimeout:
		return fmt.Sprintf("bulkhead_full: a %s call waited max_wait without getting a slot; retry later or raise max_wait or max_concurrent", r.Class)
	case Evicted:
		return fmt.Sprintf("bulkhead_full: a waiting %s call gave its place to a more critical call", r.Class)
	}
	return fmt.Sprintf("bulkhead_full: no free slot for a %s call and no room to wait; retry later or raise max_concurrent or max_queue", r.Class)
}

// Result is the kind of answer TryAcquire gave.
type Result uint8

const (
	// Permitted: admitted; the call may run while the permit is held.
	Permitted Result = iota
	// Queued: waiting for a slot until QueuedCall.Deadline.
	Queued
	// Rejected: refused at once (reason full).
	Rejected
)

// Acquire is the answer to TryAcquire: exactly one of Permit, Queued and Rejection is set,
// as Result says.
type Acquire struct {
	Result    Result
	Permit    *Permit
	Queued    *QueuedCall
	Rejection *Rejection
}

// Option configures a Bulkhead.
type Option func(*Bulkhead)

// WithClock sets the clock Allow reads and waits on (default levee.SystemClock).
func WithClock(c levee.Clock) Option { return func(b *Bulkhead) { b.clock = c } }

// OnRejection adds a listener called (outside the lock) with every rejection Allow returns.
func OnRejection(f func(Rejection)) Option {
	return func(b *Bulkhead) { b.onReject = append(b.onReject, f) }
}

// Bulkhead bounds the concurrent calls of one partition. It is safe for concurrent use.
type Bulkhead struct {
	name     string
	config   Config
	mu       sync.Mutex
	st       *state
	clock    levee.Clock
	onReject []func(Rejection)
}

// New returns a bulkhead for the named partition. Zero fields of config take the SPEC
// defaults; an impossible config is an error naming the key and the fix.
func New(name string, config Config, opts ...Option) (*Bulkhead, error) {
	config = config.WithDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	b := &Bulkhead{name: name, config: config, st: newState(config), clock: levee.SystemClock}
	for _, o := range opts {
		o(b)
	}
	return b, nil
}

// Name returns the partition name.
func (b *Bulkhead) Name() string { return b.name }

// Config returns the configuration, defaults filled in.
func (b *Bulkhead) Config() Config { return b.config }

// TryAcquire admits, queues or rejects a call of class arriving at now. Waiting calls whose
// deadline is at or before now are rejected first.
func (b *Bulkhead) TryAcquire(class levee.Criticality, now levee.Timestamp) Acquire {
	a := b.admit(class, now)
	switch a.result {
	case Permitted:
		return Acquire{Result: Permitted, Permit: &Permit{b: b, class: class, acquiredAt: a.acquiredAt, inFlight: a.inFlight}}
	case Queued:
		return Acquire{Result: Queued, Queued: &QueuedCall{b: b, seq: a.seq, class: class, enqueuedAt: a.acquiredAt, deadline: a.deadline}}
	}
	return Acquire{Result: Rejected, Rejection: &Rejection{Reason: a.reason, Class: class}}
}

// admit decides an arrival of class at now.
func (b *Bulkhead) admit(class levee.Criticality, now levee.Timestamp) admission {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st.acquire(class, b.st.observe(now))
}

// ExpireWaiting rejects (queue_timeout) every waiting call whose deadline is at or before now
// and returns how many.
func (b *Bulkhead) ExpireWaiting(now levee.Timestamp) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st.expire(b.st.observe(now))
}

// InFlight returns the calls holding a slot (levee_bulkhead_in_flight).
func (b *Bulkhead) InFlight() uint32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st.inFlight
}

// QueueDepth returns the calls waiting (levee_bulkhead_queue_depth).
func (b *Bulkhead) QueueDepth() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.st.queue)
}

// Limit returns the current limit: max_concurrent or the adaptive limit's value.
func (b *Bulkhead) Limit() uint32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st.limit()
}

// ClassLimit returns the in-flight count below which class is admitted.
func (b *Bulkhead) ClassLimit(class levee.Criticality) uint32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st.classLimit(class)
}

// PerClass is one number per criticality class.
type PerClass struct {
	Critical  uint32 `json:"critical"`
	Standard  uint32 `json:"standard"`
	Sheddable uint32 `json:"sheddable"`
}

// Snapshot is a bulkhead's state at one moment, as /health shows it.
type Snapshot struct {
	Limit       uint32     `json:"limit"`
	Algorithm   *Algorithm `json:"algorithm"` // nil for a fixed max_concurrent
	InFlight    uint32     `json:"in_flight"`
	QueueDepth  uint32     `json:"queue_depth"`
	MaxQueue    uint32     `json:"max_queue"`
	ClassLimits PerClass   `json:"class_limits"`
	Waiting     PerClass   `json:"waiting"`
}

// Snapshot returns a consistent view of the state.
func (b *Bulkhead) Snapshot() Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	w := b.st.waitingByClass()
	s := Snapshot{
		Limit:      b.st.limit(),
		InFlight:   b.st.inFlight,
		QueueDepth: uint32(min(len(b.st.queue), maxU32)),
		MaxQueue:   clampU32(b.config.MaxQueue),
		ClassLimits: PerClass{
			Critical:  b.st.classLimit(levee.Critical),
			Standard:  b.st.classLimit(levee.Standard),
			Sheddable: b.st.classLimit(levee.Sheddable),
		},
		Waiting: PerClass{
			Critical:  w[levee.Critical.Index()],
			Standard:  w[levee.Standard.Index()],
			Sheddable: w[levee.Sheddable.Index()],
		},
	}
	if b.st.adaptive != nil {
		a := b.st.adaptive.Algorithm()
		s.Algorithm = &a
	}
	return s
}

// Permit is one slot in a bulkhead. Complete or Release frees it; only the first of them
// counts.
type Permit struct {
	b          *Bulkhead
	class      levee.Criticality
	acquiredAt levee.Timestamp
	inFlight   uint32
	released   atomic.Bool
}

// Class returns the call's class.
func (p *Permit) Class() levee.Criticality { return p.class }

// AcquiredAt returns when the slot was granted (for a queued call: when it left the queue).
func (p *Permit) AcquiredAt() levee.Timestamp { return p.acquiredAt }

// InFlightAtAcquire returns the in-flight count right after this call was admitted (itself
// included).
func (p *Permit) InFlightAtAcquire() uint32 { return p.inFlight }

// Complete reports that the call ended with outcome at now: success, failure or timeout is a
// sample for the adaptive limit (round trip now − AcquiredAt, dropped when failure or
// timeout); any other outcome teaches it nothing. Then the slot is freed.
func (p *Permit) Complete(outcome levee.Outcome, now levee.Timestamp) {
	if p.released.CompareAndSwap(false, true) {
		p.b.complete(p.acquiredAt, p.inFlight, outcome, now)
	}
}

// complete frees the slot of a call admitted at acquiredAt with inFlight calls in flight,
// after feeding its sample to an adaptive limit when outcome is counted.
func (b *Bulkhead) complete(acquiredAt levee.Timestamp, inFlight uint32, outcome levee.Outcome, now levee.Timestamp) {
	var smp *sample
	if outcome.IsCounted() {
		smp = &sample{rtt: now.Since(acquiredAt), inFlight: inFlight, dropped: outcome.IsFailure()}
	}
	b.release(now, smp)
}

// Release frees the slot at now without a sample.
func (p *Permit) Release(now levee.Timestamp) {
	if p.released.CompareAndSwap(false, true) {
		p.b.release(now, nil)
	}
}

func (b *Bulkhead) release(now levee.Timestamp, smp *sample) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.release(b.st.observe(now), smp)
}

// QueuedCall is a call waiting in a bulkhead's queue. TryTake tells whether it got a slot or
// was rejected; Done is closed when that is decided. It does not time out by itself: every
// bulkhead operation made at or after Deadline rejects it, and so does ExpireWaiting. Cancel
// leaves the queue, or frees the slot it was granted but never taken.
type QueuedCall struct {
	b          *Bulkhead
	seq        uint64
	class      levee.Criticality
	enqueuedAt levee.Timestamp
	deadline   levee.Timestamp
	mu         sync.Mutex
	taken      bool
}

// Class returns the call's class.
func (q *QueuedCall) Class() levee.Criticality { return q.class }

// EnqueuedAt returns when the call joined the queue.
func (q *QueuedCall) EnqueuedAt() levee.Timestamp { return q.enqueuedAt }

// Deadline returns enqueued_at + max_wait: at this time the call is rejected (queue_timeout).
func (q *QueuedCall) Deadline() levee.Timestamp { return q.deadline }

// Done returns a channel closed once the call is granted or rejected (or was taken or
// cancelled).
func (q *QueuedCall) Done() <-chan struct{} {
	q.b.mu.Lock()
	defer q.b.mu.Unlock()
	if t, ok := q.b.st.tickets[q.seq]; ok && t.done != nil {
		return t.done
	}
	closed := make(chan struct{})
	close(closed)
	return closed
}

// TryTake returns the permit or the rejection once the call is decided (resolved true),
// once; it never blocks. While the call waits, and after its result was taken, resolved is
// false.
func (q *QueuedCall) TryTake() (permit *Permit, rejection *Rejection, resolved bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.taken {
		return nil, nil, false
	}
	q.b.mu.Lock()
	t, ok := q.b.st.take(q.seq)
	q.b.mu.Unlock()
	if !ok || t.status == waiting {
		return nil, nil, false
	}
	q.taken = true
	if t.status == granted {
		return &Permit{b: q.b, class: q.class, acquiredAt: t.acquiredAt, inFlight: t.inFlight}, nil, true
	}
	return nil, &Rejection{Reason: t.reason, Class: q.class}, true
}

// Cancel leaves the queue (or gives back a slot granted but not yet taken). It does nothing
// once the result was taken.
func (q *QueuedCall) Cancel() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.taken {
		return
	}
	q.taken = true
	q.b.mu.Lock()
	defer q.b.mu.Unlock()
	q.b.st.abandon(q.seq)
}

// Wait blocks until the call is granted or rejected, or ctx is done (then the call leaves the
// queue and ctx's error is returned). It wakes at the deadline on the bulkhead's clock to
// expire the call. A rejection is returned as a *levee.Error with code bulkhead_full.
func (q *QueuedCall) Wait(ctx context.Context) (*Permit, error) {
	for {
		if p, rej, ok := q.TryTake(); ok {
			if rej != nil {
				return nil, q.b.rejected(*rej)
			}
			return p, nil
		}
		wake := make(chan struct{}, 1)
		remaining := q.deadline.Since(q.b.clock.Now())
		stop := levee.AfterFunc(q.b.clock, remaining, func() { wake <- struct{}{} })
		select {
		case <-q.Done():
		case <-wake:
			q.b.ExpireWaiting(q.b.clock.Now())
		case <-ctx.Done():
			stop()
			q.Cancel()
			return nil, ctx.Err()
		}
		stop()
	}
}

func (b *Bulkhead) rejected(r Rejection) error {
	for _, f := range b.onReject {
		f(r)
	}
	return &levee.Error{Code: levee.CodeBulkheadFull, Upstream: b.name, Reason: r.Reason.String(), Err: &r}
}

// Allow asks for a slot for a call of the criticality carried by ctx
// (levee.CriticalityFrom), waiting in the queue when there is one. On success it returns
// done, which must be called once with the call's outcome (further calls are ignored); the
// slot is held until then. A refused call gets a *levee.Error with code bulkhead_full
// (errors.Is(err, levee.ErrBulkheadFull)) whose Reason is full, queue_timeout or evicted; a
// context done while waiting returns its error.
func (b *Bulkhead) Allow(ctx context.Context) (done func(levee.Outcome), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	class := levee.CriticalityFrom(ctx)
	a := b.admit(class, b.clock.Now())
	switch a.result {
	case Permitted:
		// What TryAcquire would wrap in a Permit, without allocating one.
		c := allowCalls.Get().(*allowCall)
		c.b, c.acquiredAt, c.inFlight = b, a.acquiredAt, a.inFlight
		seq := c.seq.Load()
		return func(o levee.Outcome) { c.done(seq, o) }, nil
	case Rejected:
		return nil, b.rejected(Rejection{Reason: a.reason, Class: class})
	}
	q := &QueuedCall{b: b, seq: a.seq, class: class, enqueuedAt: a.acquiredAt, deadline: a.deadline}
	p, err := q.Wait(ctx)
	if err != nil {
		return nil, err
	}
	return func(o levee.Outcome) { p.Complete(o, b.clock.Now()) }, nil
}

// allowCall is a slot Allow admitted at once, until its done function is called. They are
// reused (so that Allow allocates only the done function itself): seq counts the calls an
// allowCall has served, and a done function acts only while seq still holds the value it was
// made with, which makes every call of it after the first (even once the allowCall serves
// another call) do nothing.
type allowCall struct {
	b          *Bulkhead
	acquiredAt levee.Timestamp
	inFlight   uint32
	seq        atomic.Uint64
}

var allowCalls = sync.Pool{New: func() any { return new(allowCall) }}

func (c *allowCall) done(seq uint64, o levee.Outcome) {
	if !c.seq.CompareAndSwap(seq, seq+1) {
		return
	}
	b, acquiredAt, inFlight := c.b, c.acquiredAt, c.inFlight
	c.b = nil
	allowCalls.Put(c)
	b.complete(acquiredAt, inFlight, o, b.clock.Now())
}
