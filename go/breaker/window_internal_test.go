package breaker

import "testing"

func TestPermitsAllMasksExactlyClosedAndDisabled(t *testing.T) {
	for _, s := range States {
		word := pack(s, 12345)
		if got, want := word&permitsAll == 0, s == Closed || s == Disabled; got != want {
			t.Errorf("%v: permits all %v, want %v", s, got, want)
		}
	}
}

func TestCountWindowRecountsTotalsLeftOutOfRange(t *testing.T) {
	w := newCountWindow(3)
	w.record(true, false)
	w.record(false, true)
	w.record(false, false)
	want := Totals{Counted: 3, Failures: 1, Slow: 1}
	if got := w.totals(); got != want {
		t.Fatalf("totals %+v, want %+v", got, want)
	}
	w.record(false, false) // pushes out the failure
	want = Totals{Counted: 3, Slow: 1}
	if got := w.totals(); got != want {
		t.Fatalf("totals %+v, want %+v", got, want)
	}
	// What a reader may see while writers race: a slot's old call subtracted before the add
	// of the writer that stored it.
	w.packed.Add(-slotPacked(slotValue(true, true)))
	if got := w.totals(); got != want {
		t.Fatalf("recounted totals %+v, want %+v", got, want)
	}
	w.clear()
	if got := w.totals(); got != (Totals{}) {
		t.Fatalf("cleared totals %+v", got)
	}
}
