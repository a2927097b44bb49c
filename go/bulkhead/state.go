package bulkhead

import (
	"sort"
	"time"

	"github.com/levee-dev/levee/go"
)

// queueKey is a waiting call's place in line: higher class first (rank 0 = critical), then
// arrival.
type queueKey struct {
	rank int
	seq  uint64
}

func newQueueKey(class levee.Criticality, seq uint64) queueKey {
	return queueKey{rank: levee.Critical.Index() - class.Index(), seq: seq}
}

func (a queueKey) less(b queueKey) bool {
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	return a.seq < b.seq
}

type deadlineKey struct {
	at  levee.Timestamp
	seq uint64
}

func (a deadlineKey) less(b deadlineKey) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}

// ticketStatus is what became of a queued call.
type ticketStatus uint8

const (
	waiting ticketStatus = iota
	granted
	rejected
)

type ticket struct {
	class      levee.Criticality
	deadline   levee.Timestamp
	status     ticketStatus
	acquiredAt levee.Timestamp // when granted
	inFlight   uint32          // when granted
	reason     RejectReason    // when rejected
	done       chan struct{}   // closed when the status leaves waiting
}

func (t *ticket) resolve() {
	if t.done != nil {
		close(t.done)
		t.done = nil
	}
}

// sample is a finished call's report to the adaptive limit.
type sample struct {
	rtt      time.Duration
	inFlight uint32
	dropped  bool
}

// admission is the answer to an arrival.
type admission struct {
	result     Result
	acquiredAt levee.Timestamp
	inFlight   uint32
	seq        uint64
	deadline   levee.Timestamp
	reason     RejectReason
}

// state is the bulkhead's bookkeeping: admission, the waiting queue, grants, evictions and
// timeouts. The Bulkhead holds one behind its mutex.
type state struct {
	shares    Shares
	maxQueue  int
	maxWait   time.Duration
	fixed     uint32
	adaptive  *AdaptiveLimit
	inFlight  uint32
	queue     []queueKey    // waiting calls in grant order
	deadlines []deadlineKey // waiting calls by deadline, for expiry
	tickets   map[uint64]*ticket
	nextSeq   uint64
	clock     levee.Timestamp // the latest time any caller passed in
}

func newState(c Config) *state {
	s := &state{
		shares:   c.Shares,
		maxQueue: c.MaxQueue,
		maxWait:  c.MaxWait,
		tickets:  map[uint64]*ticket{},
	}
	if c.Limit != nil {
		s.adaptive = NewAdaptiveLimit(*c.Limit)
	} else {
		s.fixed = max(clampU32(c.MaxConcurrent), 1)
	}
	return s
}

// observe advances the internal clock to now (if later) and returns the clock: time never
// runs backwards inside the bulkhead.
func (s *state) observe(now levee.Timestamp) levee.Timestamp {
	s.clock = max(s.clock, now)
	return s.clock
}

func (s *state) limit() uint32 {
	if s.adaptive != nil {
		return s.adaptive.Limit()
	}
	return s.fixed
}

func (s *state) classLimit(class levee.Criticality) uint32 {
	return s.shares.ClassLimit(class, s.limit())
}

func (s *state) admits(class levee.Criticality) bool { return s.inFlight < s.classLimit(class) }

func (s *state) insertQueue(k queueKey) {
	i := sort.Search(len(s.queue), func(i int) bool { return k.less(s.queue[i]) })
	s.queue = append(s.queue, queueKey{})
	copy(s.queue[i+1:], s.queue[i:])
	s.queue[i] = k
}

func (s *state) removeQueue(k queueKey) {
	i := sort.Search(len(s.queue), func(i int) bool { return !s.queue[i].less(k) })
	if i < len(s.queue) && s.queue[i] == k {
		s.queue = append(s.queue[:i], s.queue[i+1:]...)
	}
}

func (s *state) insertDeadline(k deadlineKey) {
	i := sort.Search(len(s.deadlines), func(i int) bool { return k.less(s.deadlines[i]) })
	s.deadlines = append(s.deadlines, deadlineKey{})
	copy(s.deadlines[i+1:], s.deadlines[i:])
	s.deadlines[i] = k
}

func (s *state) removeDeadline(k deadlineKey) {
	i := sort.Search(len(s.deadlines), func(i int) bool { return !s.deadlines[i].less(k) })
	if i < len(s.deadlines) && s.deadlines[i] == k {
		s.deadlines = append(s.deadlines[:i], s.deadlines[i+1:]...)
	}
}

// waitingByClass counts waiting calls per class, indexed by Criticality.Index.
func (s *state) waitingByClass() [3]uint32 {
	var counts [3]uint32
	for _, k := range s.queue {
		if i := levee.Critical.Index() - k.rank; i >= 0 && i < 3 {
			counts[i]++
		}
	}
	return counts
}

// expire rejects (queue_timeout) every waiting call whose deadline is at or before now.
func (s *state) expire(now levee.Timestamp) int {
	expired := 0
	for len(s.deadlines) > 0 {
		d := s.deadlines[0]
		if d.at > now {
			break
		}
		s.deadlines = s.deadlines[1:]
		if t, ok := s.tickets[d.seq]; ok {
			s.removeQueue(newQueueKey(t.class, d.seq))
			t.status, t.reason = rejected, QueueTimeout
			t.resolve()
			expired++
		}
	}
	return expired
}

// grant gives slots to the head of the queue while its class admits it. With shares that
// never decrease with the class (validated), a head that is not admitted means no waiting
// call is.
func (s *state) grant(now levee.Timestamp) {
	for len(s.queue) > 0 {
		k := s.queue[0]
		t, ok := s.tickets[k.seq]
		if !ok {
			s.queue = s.queue[1:] // unreachable by construction
			continue
		}
		if !s.admits(t.class) {
			break
		}
		s.queue = s.queue[1:]
		s.removeDeadline(deadlineKey{t.deadline, k.seq})
		if s.inFlight < maxU32 {
			s.inFlight++
		}
		t.status, t.acquiredAt, t.inFlight = granted, now, s.inFlight
		t.resolve()
	}
}

// acquire decides an arrival of class at now (already observed).
func (s *state) acquire(class levee.Criticality, now levee.Timestamp) admission {
	s.expire(now)
	if s.admits(class) {
		if s.inFlight < maxU32 {
			s.inFlight++
		}
		return admission{result: Permitted, acquiredAt: now, inFlight: s.inFlight}
	}
	if s.maxQueue == 0 {
		return admission{result: Rejected, reason: Full}
	}
	if len(s.queue) >= s.maxQueue {
		// The last key is the newest call of the lowest waiting class.
		victim := s.queue[len(s.queue)-1]
		if victim.rank <= newQueueKey(class, 0).rank {
			return admission{result: Rejected, reason: Full}
		}
		s.queue = s.queue[:len(s.queue)-1]
		if t, ok := s.tickets[victim.seq]; ok {
			s.removeDeadline(deadlineKey{t.deadline, victim.seq})
			t.status, t.reason = rejected, Evicted
			t.resolve()
		}
	}
	seq := s.nextSeq
	s.nextSeq++
	deadline := now.Add(s.maxWait)
	s.insertQueue(newQueueKey(class, seq))
	s.insertDeadline(deadlineKey{deadline, seq})
	s.tickets[seq] = &ticket{class: class, deadline: deadline, status: waiting, done: make(chan struct{})}
	return admission{result: Queued, seq: seq, acquiredAt: now, deadline: deadline}
}

// release frees one slot (after feeding the sample to an adaptive limit), then times out due
// waiters and grants slots to the head of the queue.
func (s *state) release(now levee.Timestamp, smp *sample) {
	if smp != nil && s.adaptive != nil {
		s.adaptive.OnSample(smp.rtt, smp.inFlight, smp.dropped)
	}
	if s.inFlight > 0 {
		s.inFlight--
	}
	s.expire(now)
	s.grant(now)
}

// take returns (a copy of) what became of queued call seq; a resolved ticket is removed (it
// is taken).
func (s *state) take(seq uint64) (ticket, bool) {
	t, ok := s.tickets[seq]
	if !ok {
		return ticket{}, false
	}
	if t.status != waiting {
		delete(s.tickets, seq)
	}
	return *t, true
}

// abandon: queued call seq was dropped: leave the queue, or give back a slot granted but
// never taken.
func (s *state) abandon(seq uint64) {
	t, ok := s.tickets[seq]
	if !ok {
		return
	}
	delete(s.tickets, seq)
	switch t.status {
	case waiting:
		s.removeQueue(newQueueKey(t.class, seq))
		s.removeDeadline(deadlineKey{t.deadline, seq})
		t.resolve()
	case granted:
		s.release(s.clock, nil)
	}
}
