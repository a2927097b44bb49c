package breaker

import (
	"sync"
	"sync/atomic"

	"github.com/levee-dev/levee/go"
)

// The breaker's outcome windows, lock-free on the recording path as in levee-core: the closed
// path (acquire + record) is the hot path of every guarded call. Recording a success into a
// count window whose oldest call was also a success is one atomic add (the cursor) and two
// loads; into a time window it is one atomic add on the current bucket plus the loads that sum
// the window. The only lock is taken by the first record in a new time bucket, which resets
// the bucket, and by clear.
//
// Under concurrent recording the totals are exact once every in-flight record has returned; a
// reader racing a writer may see a call that is half recorded, which can delay or advance a
// trip by one call. Single-threaded use (and so every conformance vector) is exact.

// window is either window kind. (Breaker.Record dispatches its record itself.)
type window struct {
	count *countWindow // when the kind is count
	time  *timeWindow  // when the kind is time
}

// totals returns the totals as of now.
func (w window) totals(now levee.Timestamp) Totals {
	if w.count != nil {
		return w.count.totals()
	}
	return w.time.totals(now)
}

// clear forgets every call (on closing, and when an override is cleared).
func (w window) clear() {
	if w.count != nil {
		w.count.clear()
		return
	}
	w.time.clear()
}

// A count window's totals are packed in one word: counted calls in bits 0..22, failures in
// 22..43, slow calls in 43..64. A count window never holds more than MaxWindowSize calls, so
// each field stays in range, and one wrapping add of (new − old) updates all three.
const (
	packedCounted     = 1
	packedFailure     = 1 << 22
	packedSlow        = 1 << 43
	packedCountedMask = 1<<22 - 1
	packedFailureMask = 1<<21 - 1
)

func decode(packed uint64) Totals {
	return Totals{
		Counted:  packed & packedCountedMask,
		Failures: packed >> 22 & packedFailureMask,
		Slow:     packed >> 43,
	}
}

// Slot value: bit 0 = holds a call, bit 1 = failed, bit 2 = slow.
func slotValue(failed, slow bool) uint32 {
	v := uint32(1)
	if failed {
		v |= 2
	}
	if slow {
		v |= 4
	}
	return v
}

func slotPacked(v uint32) uint64 {
	if v&1 == 0 {
		return 0
	}
	p := uint64(packedCounted)
	if v&2 != 0 {
		p += packedFailure
	}
	if v&4 != 0 {
		p += packedSlow
	}
	return p
}

// cacheLine separates fields written by every call from fields that are only read.
type cacheLine [64]byte

// countWindow holds the last size counted calls: a ring of one slot per call plus running
// totals.
type countWindow struct {
	_      cacheLine
	cursor atomic.Uint64 // written by every record
	_      cacheLine
	packed atomic.Uint64 // written only when a record changes the totals
	slots  []atomic.Uint32
	_      cacheLine
}

func newCountWindow(size int) *countWindow {
	return &countWindow{slots: make([]atomic.Uint32, max(size, 1))}
}

func (w *countWindow) record(failed, slow bool) Totals {
	slot := &w.slots[(w.cursor.Add(1)-1)%uint64(len(w.slots))]
	v := slotValue(failed, slow)
	// Overwriting a slot with the value it holds changes nothing (in steady state a success
	// replaces a success), so the swap and the totals update are skipped.
	if old := slot.Load(); old != v {
		if old = slot.Swap(v); old != v {
			return w.checked(w.packed.Add(slotPacked(v) - slotPacked(old)))
		}
	}
	return w.checked(w.packed.Load())
}

func (w *countWindow) totals() Totals { return w.checked(w.packed.Load()) }

// checked returns the packed totals, recounted from the slots in the rare case that racing
// writers left them out of range for a moment.
func (w *countWindow) checked(packed uint64) Totals {
	t := decode(packed)
	if n := uint64(len(w.slots)); t.Counted <= n && t.Failures <= t.Counted && t.Slow <= t.Counted {
		return t
	}
	return w.recount()
}

func (w *countWindow) recount() Totals {
	var recount uint64
	for i := range w.slots {
		recount += slotPacked(w.slots[i].Load())
	}
	return decode(recount)
}

func (w *countWindow) clear() {
	for i := range w.slots {
		w.slots[i].Store(0)
	}
	w.packed.Store(0)
}

// timeWindow holds the last size seconds in 1 s buckets aligned to whole seconds of the clock.
// Each bucket keeps its three counts in full words: one bucket may take any number of calls a
// second.
type timeWindow struct {
	buckets []bucket
	rotate  sync.Mutex // taken to reset a bucket for a new second, and to clear
}

type bucket struct {
	second   atomic.Uint64 // the absolute second this bucket counts, plus one (0 = never used)
	counted  atomic.Uint64
	failures atomic.Uint64
	slow     atomic.Uint64
}

const nanosPerSecond = 1_000_000_000

func newTimeWindow(size int) *timeWindow {
	return &timeWindow{buckets: make([]bucket, max(size, 1))}
}

func (w *timeWindow) record(now levee.Timestamp, failed, slow bool) Totals {
	second := uint64(now) / nanosPerSecond
	tag := second + 1
	b := &w.buckets[second%uint64(len(w.buckets))]
	if b.second.Load() != tag {
		w.rotate.Lock()
		// A bucket holding an older second is reset; one already holding a newer second
		// (this call's clock reading is late) simply takes the call.
		if b.second.Load() < tag {
			b.slow.Store(0)
			b.failures.Store(0)
			b.counted.Store(0)
			b.second.Store(tag)
		}
		w.rotate.Unlock()
	}
	// Counted first: a reader, which loads the counts in the opposite order, never sees more
	// failures or slow calls than counted ones.
	b.counted.Add(1)
	if failed {
		b.failures.Add(1)
	}
	if slow {
		b.slow.Add(1)
	}
	return w.totals(now)
}

func (w *timeWindow) totals(now levee.Timestamp) Totals {
	second := uint64(now) / nanosPerSecond
	size := uint64(len(w.buckets))
	var oldest uint64
	if second+1 > size {
		oldest = second + 1 - size
	}
	var sum Totals
	for i := range w.buckets {
		b := &w.buckets[i]
		if tag := b.second.Load(); tag != 0 && tag-1 >= oldest && tag-1 <= second {
			sum.Slow += b.slow.Load()
			sum.Failures += b.failures.Load()
			sum.Counted += b.counted.Load()
		}
	}
	return sum
}

func (w *timeWindow) clear() {
	w.rotate.Lock()
	defer w.rotate.Unlock()
	for i := range w.buckets {
		b := &w.buckets[i]
		b.second.Store(0)
		b.slow.Store(0)
		b.failures.Store(0)
		b.counted.Store(0)
	}
}
