package breaker

import "github.com/levee-dev/levee/go"

// window is either window kind; the breaker's lock guards it.
type window interface {
	// record records one counted call and returns the totals including it.
	record(now levee.Timestamp, failed, slow bool) Totals
	// totals returns the totals as of now.
	totals(now levee.Timestamp) Totals
	// clear forgets every call (on closing, and when an override is cleared).
	clear()
}

func (t *Totals) add(failed, slow bool, sign int) {
	d := uint64(sign)
	t.Counted += d
	if failed {
		t.Failures += d
	}
	if slow {
		t.Slow += d
	}
}

// countWindow holds the last size counted calls: a ring of one byte per call (bit 0 = holds a
// call, bit 1 = failed, bit 2 = slow) plus running totals.
type countWindow struct {
	slots  []uint8
	cursor uint64
	sum    Totals
}

func newCountWindow(size int) *countWindow {
	return &countWindow{slots: make([]uint8, max(size, 1))}
}

func (w *countWindow) record(_ levee.Timestamp, failed, slow bool) Totals {
	i := w.cursor % uint64(len(w.slots))
	w.cursor++
	if old := w.slots[i]; old&1 != 0 {
		w.sum.add(old&2 != 0, old&4 != 0, -1)
	}
	b := uint8(1)
	if failed {
		b |= 2
	}
	if slow {
		b |= 4
	}
	w.slots[i] = b
	w.sum.add(failed, slow, 1)
	return w.sum
}

func (w *countWindow) totals(levee.Timestamp) Totals { return w.sum }

func (w *countWindow) clear() {
	clear(w.slots)
	w.sum = Totals{}
}

// timeWindow holds the last size seconds in 1 s buckets aligned to whole seconds of the clock.
type timeWindow struct {
	buckets []bucket
}

type bucket struct {
	second uint64 // the absolute second this bucket counts, plus one (0 = never used)
	sum    Totals
}

const nanosPerSecond = 1_000_000_000

func newTimeWindow(size int) *timeWindow {
	return &timeWindow{buckets: make([]bucket, max(size, 1))}
}

func (w *timeWindow) record(now levee.Timestamp, failed, slow bool) Totals {
	second := uint64(now) / nanosPerSecond
	tag := second + 1
	b := &w.buckets[second%uint64(len(w.buckets))]
	// A bucket holding an older second is reset; one already holding a newer second (this
	// call's clock reading is late) simply takes the call.
	if b.second < tag {
		b.sum = Totals{}
		b.second = tag
	}
	b.sum.add(failed, slow, 1)
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
	for _, b := range w.buckets {
		if b.second != 0 && b.second-1 >= oldest && b.second-1 <= second {
			sum.Counted += b.sum.Counted
			sum.Failures += b.sum.Failures
			sum.Slow += b.sum.Slow
		}
	}
	return sum
}

func (w *timeWindow) clear() { clear(w.buckets) }
