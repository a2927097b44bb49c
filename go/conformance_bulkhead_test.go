package levee_test

// Runner subjects for policies "bulkhead" and "adaptive_limit"
// (conformance/policies/bulkhead.md, adaptive_limit.md), as in the Rust runner's bulkhead.rs
// and adaptive_limit.rs. After every bulkhead step the runner polls each waiting call with
// TryTake, so that granted, evicted and timed_out report what changed during the step, each
// in queue order (class, highest first, then arrival).

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/bulkhead"
)

func init() {
	policies["bulkhead"] = newBulkheadSubject
	policies["adaptive_limit"] = newAdaptiveLimitSubject
}

type callInfo struct {
	class   levee.Criticality
	arrival int
}

type bulkheadSubject struct {
	b       *bulkhead.Bulkhead
	calls   map[string]callInfo
	permits map[string]*bulkhead.Permit
	waiting map[string]*bulkhead.QueuedCall
}

func newBulkheadSubject(config []byte, _ *env) (subject, error) {
	c, err := bulkhead.ParseConfig(config)
	if err != nil {
		return nil, configError(err)
	}
	b, err := bulkhead.New("vector", c)
	if err != nil {
		return nil, err
	}
	return &bulkheadSubject{b: b, calls: map[string]callInfo{}, permits: map[string]*bulkhead.Permit{}, waiting: map[string]*bulkhead.QueuedCall{}}, nil
}

// onlyKeys fails on argument keys the action does not take, so a typo cannot pass silently.
func onlyKeys(args any, allowed ...string) error {
	m, ok := args.(map[string]any)
	if !ok {
		return fmt.Errorf("arguments must be an object, got %s", show(args))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		found := false
		for _, a := range allowed {
			found = found || a == k
		}
		if !found {
			return fmt.Errorf("unknown argument `%s` (this action takes %q)", k, allowed)
		}
	}
	return nil
}

func (s *bulkheadSubject) acquire(e *env, args any, exp *expect) error {
	if err := onlyKeys(args, "id", "criticality"); err != nil {
		return err
	}
	id, err := strField(args, "id")
	if err != nil {
		return err
	}
	class := levee.Standard
	if v, ok := field(args, "criticality"); ok {
		text, ok := v.(string)
		if !ok {
			return fmt.Errorf("`criticality` must be a string, got %s", show(v))
		}
		if class, err = levee.ParseCriticality(text); err != nil {
			return err
		}
	}
	if _, used := s.calls[id]; used {
		return fmt.Errorf("id `%s` is already used in this vector", id)
	}
	s.calls[id] = callInfo{class: class, arrival: len(s.calls)}
	var (
		result   string
		reason   any
		deadline *time.Duration
	)
	a := s.b.TryAcquire(class, e.now())
	switch a.Result {
	case bulkhead.Permitted:
		s.permits[id] = a.Permit
		result = "permitted"
	case bulkhead.Queued:
		d := a.Queued.Deadline().Since(vectorStart)
		deadline = &d
		s.waiting[id] = a.Queued
		result = "queued"
	default:
		if a.Rejection.Class != class {
			return fmt.Errorf("rejection names class %s, not %s", a.Rejection.Class, class)
		}
		result, reason = "rejected", a.Rejection.Reason.String()
	}
	if err := exp.eq("result", result); err != nil {
		return err
	}
	if err := exp.eq("reason", reason); err != nil {
		return err
	}
	return exp.duration("deadline", deadline)
}

func (s *bulkheadSubject) permit(args any) (*bulkhead.Permit, error) {
	id, err := strField(args, "id")
	if err != nil {
		return nil, err
	}
	p, ok := s.permits[id]
	if !ok {
		return nil, fmt.Errorf("`%s` holds no permit (unknown, waiting, rejected or already released)", id)
	}
	delete(s.permits, id)
	return p, nil
}

// poll polls every waiting call and reports the grants, evictions and timeouts of this step.
func (s *bulkheadSubject) poll(exp *expect) error {
	var granted, evicted, timedOut []string
	ids := make([]string, 0, len(s.waiting))
	for id := range s.waiting {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		p, rej, ok := s.waiting[id].TryTake()
		if !ok {
			continue
		}
		switch {
		case rej == nil:
			s.permits[id] = p
			granted = append(granted, id)
		case rej.Reason == bulkhead.Evicted:
			evicted = append(evicted, id)
		case rej.Reason == bulkhead.QueueTimeout:
			timedOut = append(timedOut, id)
		default:
			return fmt.Errorf("waiting call `%s` was rejected with `full`", id)
		}
		delete(s.waiting, id)
	}
	for _, l := range []struct {
		key  string
		list []string
	}{{"granted", granted}, {"evicted", evicted}, {"timed_out", timedOut}} {
		list := append([]string{}, l.list...)
		sort.SliceStable(list, func(i, j int) bool {
			a, b := s.calls[list[i]], s.calls[list[j]]
			if a.class != b.class {
				return a.class > b.class
			}
			return a.arrival < b.arrival
		})
		if err := exp.eq(l.key, list); err != nil {
			return err
		}
	}
	return nil
}

func (s *bulkheadSubject) step(e *env, action string, args any, exp *expect) error {
	now := e.now()
	switch action {
	case "acquire":
		if err := s.acquire(e, args, exp); err != nil {
			return err
		}
	case "release":
		if err := onlyKeys(args, "id"); err != nil {
			return err
		}
		p, err := s.permit(args)
		if err != nil {
			return err
		}
		p.Release(now)
	case "complete":
		if err := onlyKeys(args, "id", "outcome"); err != nil {
			return err
		}
		text, err := strField(args, "outcome")
		if err != nil {
			return err
		}
		o, err := levee.ParseOutcome(text)
		if err != nil {
			return fmt.Errorf("`outcome`: %v", err)
		}
		p, err := s.permit(args)
		if err != nil {
			return err
		}
		p.Complete(o, now)
	case "cancel":
		if err := onlyKeys(args, "id"); err != nil {
			return err
		}
		id, err := strField(args, "id")
		if err != nil {
			return err
		}
		q, ok := s.waiting[id]
		if !ok {
			return fmt.Errorf("`%s` is not waiting (unknown, granted or rejected)", id)
		}
		delete(s.waiting, id)
		q.Cancel()
	case "expire":
		if err := onlyKeys(args); err != nil {
			return err
		}
		if err := exp.eq("expired", s.b.ExpireWaiting(now)); err != nil {
			return err
		}
	case "state":
		if err := onlyKeys(args); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown bulkhead action `%s` (use acquire, release, complete, cancel, expire, state, advance)", action)
	}
	if err := s.poll(exp); err != nil {
		return err
	}
	snap := s.b.Snapshot()
	for _, c := range []struct {
		key   string
		value any
	}{
		{"in_flight", snap.InFlight},
		{"queue_depth", snap.QueueDepth},
		{"limit", snap.Limit},
		{"class_limits", snap.ClassLimits},
	} {
		if err := exp.eq(c.key, c.value); err != nil {
			return err
		}
	}
	return nil
}

type adaptiveLimitSubject struct{ limit *bulkhead.AdaptiveLimit }

func newAdaptiveLimitSubject(config []byte, _ *env) (subject, error) {
	c := bulkhead.DefaultLimitConfig()
	if err := levee.UnmarshalConfig(config, &c); err != nil {
		return nil, configError(err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &adaptiveLimitSubject{limit: bulkhead.NewAdaptiveLimit(c)}, nil
}

// exactFloat compares an exact float expectation (a decimal string, or null) with actual, bit
// for bit; strconv.ParseFloat rounds correctly, as Rust's parser does.
func exactFloat(exp *expect, key string, actual *float64) error {
	v, ok := exp.get(key)
	if !ok {
		return nil
	}
	var expected *float64
	switch t := v.(type) {
	case nil:
	case string:
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return fmt.Errorf("`%s` must be a decimal string: %v", key, err)
		}
		expected = &f
	default:
		return fmt.Errorf("`%s` must be a decimal string such as \"20.8\", got %s", key, show(v))
	}
	switch {
	case expected == nil && actual == nil:
		return nil
	case expected != nil && actual != nil && math.Float64bits(*expected) == math.Float64bits(*actual):
		return nil
	}
	f := func(p *float64) string {
		if p == nil {
			return "None"
		}
		return fmt.Sprintf("Some(%s)", strconv.FormatFloat(*p, 'g', -1, 64))
	}
	return fmt.Errorf("expected %s = %s, got %s", key, f(expected), f(actual))
}

func (s *adaptiveLimitSubject) step(_ *env, action string, args any, exp *expect) error {
	switch action {
	case "sample":
		m, ok := args.(map[string]any)
		if !ok {
			return errors.New("`sample` takes an object")
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k != "rtt" && k != "in_flight" && k != "outcome" {
				return fmt.Errorf("unknown argument `%s` (sample takes rtt, in_flight, outcome)", k)
			}
		}
		rtt, err := durationField(args, "rtt")
		if err != nil {
			return err
		}
		if rtt == nil {
			return errors.New("`sample` needs `rtt`")
		}
		inFlight, ok, err := uintField(args, "in_flight")
		if err != nil || !ok || inFlight > math.MaxUint32 {
			return errors.New("`sample` needs `in_flight`, a whole number")
		}
		text, err := strField(args, "outcome")
		if err != nil {
			return err
		}
		o, err := levee.ParseOutcome(text)
		if err != nil {
			return fmt.Errorf("`outcome`: %v", err)
		}
		if !o.IsCounted() {
			return fmt.Errorf("outcome `%s` is never a sample (only success, failure and timeout are)", o)
		}
		if got := s.limit.OnSample(*rtt, uint32(inFlight), o.IsFailure()); got != s.limit.Limit() {
			return fmt.Errorf("OnSample returned %d, Limit() says %d", got, s.limit.Limit())
		}
	case "state":
		if m, ok := args.(map[string]any); !ok || len(m) != 0 {
			return errors.New("`state` takes an empty object")
		}
	default:
		return fmt.Errorf("unknown adaptive_limit action `%s` (use sample, state)", action)
	}
	if err := exp.eq("limit", s.limit.Limit()); err != nil {
		return err
	}
	estimate := s.limit.Estimate()
	if err := exactFloat(exp, "estimate", &estimate); err != nil {
		return err
	}
	var long *float64
	if v, ok := s.limit.LongRTTNanos(); ok {
		long = &v
	}
	return exactFloat(exp, "long_rtt_ns", long)
}
