package bulkhead_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/bulkhead"
)

const t0 = levee.Timestamp(1_000_000_000)

func TestConfigDefaultsAndValidation(t *testing.T) {
	b, err := bulkhead.New("p", bulkhead.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Limit() != 100 || b.ClassLimit(levee.Standard) != 80 || b.ClassLimit(levee.Sheddable) != 50 {
		t.Errorf("defaults: limit %d", b.Limit())
	}
	for in, want := range map[string]string{
		`{"max_concurrent": 0}`:                          "max_concurrent is 0",
		`{"max_queue": 32}`:                              "max_queue is 32 but max_wait is 0s",
		`{"max_wait": "50ms"}`:                           "max_wait is 50ms but max_queue is 0",
		`{"shares": {"sheddable": 90}}`:                  "shares.sheddable (90) is larger than shares.standard (80)",
		`{"shares": {"critical": 101}}`:                  "shares.critical is 101",
		`{"shares": {"urgent": 10}}`:                     "unknown field",
		`{"limit": {"min": 10, "max": 5, "initial": 5}}`: "limit: max (5) is below min (10)",
		`{"max_wait": 50}`:                               "has no unit",
	} {
		if _, err := bulkhead.ParseConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConfig(%s) = %v; want %q", in, err, want)
		}
	}
	c, err := bulkhead.ParseConfig([]byte(`{"max_concurrent": 0, "limit": {"algorithm": "gradient2"}}`))
	if err != nil || c.Limit.Initial != 20 || c.Limit.Algorithm != bulkhead.Gradient2 {
		t.Fatalf("limit defaults: %+v %v", c.Limit, err)
	}
}

func TestQueuedCallIsGrantedWhenASlotFrees(t *testing.T) {
	b, _ := bulkhead.New("p", bulkhead.Config{MaxConcurrent: 1, MaxQueue: 2, MaxWait: 50 * time.Millisecond})
	first := b.TryAcquire(levee.Critical, t0)
	if first.Result != bulkhead.Permitted {
		t.Fatal(first.Result)
	}
	q := b.TryAcquire(levee.Critical, t0.Add(5*time.Millisecond)).Queued
	if q == nil || q.Deadline() != t0.Add(55*time.Millisecond) {
		t.Fatal("not queued")
	}
	if _, _, ok := q.TryTake(); ok {
		t.Fatal("resolved too early")
	}
	first.Permit.Complete(levee.Success, t0.Add(10*time.Millisecond))
	first.Permit.Complete(levee.Success, t0.Add(10*time.Millisecond)) // ignored
	<-q.Done()
	p, rej, ok := q.TryTake()
	if !ok || rej != nil || p.AcquiredAt() != t0.Add(10*time.Millisecond) || p.InFlightAtAcquire() != 1 {
		t.Fatalf("grant: %v %v %v", p, rej, ok)
	}
	if _, _, ok := q.TryTake(); ok {
		t.Fatal("a result is taken once")
	}
	p.Release(t0.Add(20 * time.Millisecond))
	if b.InFlight() != 0 {
		t.Fatal(b.InFlight())
	}
}

func TestCancellingAGrantedCallGivesTheSlotOnward(t *testing.T) {
	b, _ := bulkhead.New("p", bulkhead.Config{MaxConcurrent: 1, MaxQueue: 2, MaxWait: time.Second})
	first := b.TryAcquire(levee.Standard, t0)
	a := b.TryAcquire(levee.Standard, t0).Queued
	c := b.TryAcquire(levee.Standard, t0).Queued
	first.Permit.Release(t0)
	a.Cancel() // granted but never taken: the slot goes to c
	if p, _, ok := c.TryTake(); !ok || p == nil {
		t.Fatal("c was not granted")
	}
	if b.InFlight() != 1 || b.QueueDepth() != 0 {
		t.Fatalf("in flight %d depth %d", b.InFlight(), b.QueueDepth())
	}
}

func TestAllowWaitsAndHonoursTheContext(t *testing.T) {
	clock := levee.NewManualClock(t0)
	var rejections []bulkhead.Rejection
	var mu sync.Mutex
	b, _ := bulkhead.New("p", bulkhead.Config{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Second},
		bulkhead.WithClock(clock), bulkhead.OnRejection(func(r bulkhead.Rejection) {
			mu.Lock()
			rejections = append(rejections, r)
			mu.Unlock()
		}))
	ctx := levee.WithCriticality(context.Background(), levee.Critical)
	done, err := b.Allow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		d, err := b.Allow(ctx)
		if err == nil {
			d(levee.Success)
		}
		got <- err
	}()
	for b.QueueDepth() == 0 {
		runtime.Gosched()
	}
	done(levee.Success)
	if err := <-got; err != nil {
		t.Fatalf("queued call: %v", err)
	}

	done, _ = b.Allow(ctx)
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		_, err := b.Allow(cctx)
		got <- err
	}()
	for b.QueueDepth() == 0 {
		runtime.Gosched()
	}
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) || b.QueueDepth() != 0 {
		t.Fatalf("cancelled wait: %v depth %d", err, b.QueueDepth())
	}
	// A sheddable arrival at a full bulkhead with a full queue of critical calls is refused.
	go func() { _, err := b.Allow(ctx); got <- err }()
	for b.QueueDepth() == 0 {
		runtime.Gosched()
	}
	_, err = b.Allow(levee.WithCriticality(context.Background(), levee.Sheddable))
	var le *levee.Error
	if !errors.Is(err, levee.ErrBulkheadFull) || !errors.As(err, &le) || le.Reason != "full" {
		t.Fatalf("full: %v", err)
	}
	clock.Advance(time.Second)
	if err := <-got; !errors.Is(err, levee.ErrBulkheadFull) {
		t.Fatalf("timeout: %v", err)
	}
	done(levee.Success)
	mu.Lock()
	defer mu.Unlock()
	if len(rejections) != 2 || rejections[0].Reason != bulkhead.Full || rejections[1].Reason != bulkhead.QueueTimeout {
		t.Errorf("rejections %v", rejections)
	}
}

func TestAdaptiveLimitDrivesAdmission(t *testing.T) {
	b, _ := bulkhead.New("p", bulkhead.Config{Limit: &bulkhead.LimitConfig{Initial: 2, Min: 1, Max: 3}})
	a := b.TryAcquire(levee.Critical, t0)
	c := b.TryAcquire(levee.Critical, t0)
	if c.Result != bulkhead.Permitted || b.TryAcquire(levee.Critical, t0).Result != bulkhead.Rejected {
		t.Fatal("limit 2")
	}
	c.Permit.Complete(levee.Success, t0) // in flight at admission (2) reached the limit: +1
	if b.Limit() != 3 {
		t.Fatalf("limit %d", b.Limit())
	}
	a.Permit.Complete(levee.Timeout, t0) // a drop: floor(3 * 0.9) = 2
	if b.Limit() != 2 {
		t.Fatalf("limit %d", b.Limit())
	}
	s := b.Snapshot()
	if s.Algorithm == nil || *s.Algorithm != bulkhead.AIMD || s.ClassLimits.Sheddable != 1 {
		t.Errorf("snapshot %+v", s)
	}
}

func TestConcurrentUseIsRaceFree(t *testing.T) {
	b, _ := bulkhead.New("p", bulkhead.Config{MaxConcurrent: 4, MaxQueue: 64, MaxWait: time.Hour})
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				done, err := b.Allow(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				done(levee.Success)
			}
		}()
	}
	wg.Wait()
	if b.InFlight() != 0 || b.QueueDepth() != 0 {
		t.Errorf("in flight %d depth %d", b.InFlight(), b.QueueDepth())
	}
}

func TestAllowDoneFreesTheSlotOnlyOnce(t *testing.T) {
	b, _ := bulkhead.New("p", bulkhead.Config{MaxConcurrent: 1})
	ctx := context.Background()
	first, err := b.Allow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first(levee.Success)
	// Allow reuses what a finished call leaves behind: a late second call of first must not
	// free the slot of the call that reused it.
	second, err := b.Allow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first(levee.Success)
	if n := b.InFlight(); n != 1 {
		t.Fatalf("in flight %d after a repeated done", n)
	}
	if _, err := b.Allow(ctx); !errors.Is(err, levee.ErrBulkheadFull) {
		t.Fatalf("third call: %v", err)
	}
	second(levee.Failure)
	second(levee.Failure)
	if n := b.InFlight(); n != 0 {
		t.Fatalf("in flight %d", n)
	}
}
