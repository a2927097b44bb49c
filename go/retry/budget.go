package retry

import (
	"sync"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/internal/u128"
)

// Slots is the number of slots a budget's window is split into.
const Slots = 10

type slot struct {
	index    uint64
	deposits uint64
	retries  uint64
}

// Budget is a retry budget (SPEC §4): retries may add at most a fraction of the original
// requests, plus a small floor of retries per second that is always allowed. Share one per
// endpoint key. It is safe for concurrent use.
//
// Every original request deposits once (Deposit); every retry must withdraw first
// (TryWithdraw). Exactly as levee-core: the window is ttl split into 10 slots of ttl_ns/10
// nanoseconds counted from the budget's start; the live slots at now are the 10 most recent.
// A withdrawal is allowed iff (R + 1) × 1e6 <= min_per_second × ttl_ms × 1e3 + ratio_ppm × D,
// with D deposits and R retries in the live slots, in exact 128-bit integers.
type Budget struct {
	config    BudgetConfig
	start     levee.Timestamp
	slotWidth uint64
	floorPPM  u128.U128
	ratioPPM  uint64
	mu        sync.Mutex
	head      uint64
	slots     [Slots]slot
}

// NewBudget returns a budget whose window starts at start. Unset fields of config take the
// SPEC defaults; the config should pass Validate (out-of-range values never panic).
func NewBudget(config BudgetConfig, start levee.Timestamp) *Budget {
	config = config.WithDefaults()
	ttl := nanos(config.TTL)
	ms := uint64(config.TTL / time.Millisecond)
	mps := uint64(max(config.minPerSecond(), 0))
	return &Budget{
		config:    config,
		start:     start,
		slotWidth: max(ttl/Slots, 1),
		floorPPM:  u128.Mul64(mps, ms).SatMul64(1_000),
		ratioPPM:  config.ratioPPM(),
	}
}

// Config returns the config this budget was built from, defaults filled in.
func (b *Budget) Config() BudgetConfig { return b.config }

func (b *Budget) slotIndex(now levee.Timestamp) uint64 {
	var elapsed uint64
	if now > b.start {
		elapsed = uint64(now - b.start)
	}
	return elapsed / b.slotWidth
}

// current moves the head to index (never backwards) and returns the head's slot, cleared if
// it last held an older index.
func (b *Budget) current(index uint64) *slot {
	b.head = max(b.head, index)
	s := &b.slots[b.head%Slots]
	if s.index != b.head {
		*s = slot{index: b.head}
	}
	return s
}

// totals returns the deposits and retries in the live slots for index (or the head, if newer).
func (b *Budget) totals(index uint64) (deposits, retries uint64) {
	b.head = max(b.head, index)
	var oldest uint64
	if b.head >= Slots-1 {
		oldest = b.head - (Slots - 1)
	}
	for _, s := range b.slots {
		if s.index >= oldest && s.index <= b.head {
			deposits = satAdd(deposits, s.deposits)
			retries = satAdd(retries, s.retries)
		}
	}
	return deposits, retries
}

func satAdd(a, b uint64) uint64 {
	if a > ^uint64(0)-b {
		return ^uint64(0)
	}
	return a + b
}

func (b *Budget) capacityPPM(deposits uint64) u128.U128 {
	return b.floorPPM.SatAdd(u128.Mul64(b.ratioPPM, deposits))
}

func (b *Budget) allows(deposits, retries uint64) bool {
	wanted := u128.From(retries).SatAdd(u128.From(1)).SatMul64(1_000_000)
	return wanted.Cmp(b.capacityPPM(deposits)) <= 0
}

// Deposit records one original request at now. Call it once per request, not per attempt.
func (b *Budget) Deposit(now levee.Timestamp) {
	index := b.slotIndex(now)
	b.mu.Lock()
	s := b.current(index)
	s.deposits = satAdd(s.deposits, 1)
	b.mu.Unlock()
}

// TryWithdraw asks for one retry at now: true (and the retry is counted) when the budget
// allows it; a refused withdrawal counts nothing.
func (b *Budget) TryWithdraw(now levee.Timestamp) bool {
	index := b.slotIndex(now)
	b.mu.Lock()
	defer b.mu.Unlock()
	deposits, retries := b.totals(index)
	if !b.allows(deposits, retries) {
		return false
	}
	s := b.current(index)
	s.retries = satAdd(s.retries, 1)
	return true
}

// BudgetSnapshot is what a budget holds at one moment.
type BudgetSnapshot struct {
	Deposits  uint64 `json:"deposits"`  // deposits in the live window
	Retries   uint64 `json:"retries"`   // retries in the live window
	Available uint64 `json:"available"` // further retries that would be allowed now
}

// Snapshot returns the live window's counts at now.
func (b *Budget) Snapshot(now levee.Timestamp) BudgetSnapshot {
	index := b.slotIndex(now)
	b.mu.Lock()
	defer b.mu.Unlock()
	deposits, retries := b.totals(index)
	capacity := b.capacityPPM(deposits).Div64(1_000_000)
	var available uint64
	if capacity > retries {
		available = capacity - retries
	}
	return BudgetSnapshot{Deposits: deposits, Retries: retries, Available: available}
}
