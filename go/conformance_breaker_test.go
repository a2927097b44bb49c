package levee_test

// Runner subject for policy "breaker" (conformance/policies/breaker.md), as in the Rust
// runner's breaker.rs.

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
)

func init() { policies["breaker"] = newBreakerSubject }

type breakerSubject struct {
	// The breaker lives in a group so that `reconfigure` goes through Group.Reconfigure, the
	// path distributed policies take (SPEC §9).
	g       *breaker.Group
	b       *breaker.Breaker
	permits map[string]breaker.Permit
}

func newBreakerSubject(config []byte, e *env) (subject, error) {
	c, err := breaker.ParseConfig(config)
	if err != nil {
		return nil, configError(err)
	}
	opts := []breaker.Option{breaker.WithRandom(e.random), breaker.WithClock(e.clock)}
	if _, err := breaker.New("vector", c, opts...); err != nil {
		return nil, err
	}
	g, err := breaker.NewGroup(c, opts...)
	if err != nil {
		return nil, err
	}
	return &breakerSubject{g: g, b: g.Get("vector"), permits: map[string]breaker.Permit{}}, nil
}

func outcomeField(args any) (levee.Outcome, error) {
	text, err := strField(args, "outcome")
	if err != nil {
		return 0, err
	}
	o, err := levee.ParseOutcome(text)
	if err != nil {
		return 0, fmt.Errorf("unknown outcome `%s`", text)
	}
	return o, nil
}

func eventsJSON(e *env, events []breaker.Transition, withAt bool) []any {
	out := []any{}
	for _, t := range events {
		ev := map[string]any{"from": t.From.String(), "to": t.To.String(), "reason": t.Reason.String()}
		if withAt {
			ev["at"] = e.elapsedText(t.At)
		}
		out = append(out, ev)
	}
	return out
}

// checkCommon checks the expectations every breaker step shares.
func (s *breakerSubject) checkCommon(e *env, exp *expect, events []breaker.Transition) error {
	if expected, ok := exp.get("events"); ok {
		withAt := false
		if arr, ok := expected.([]any); ok {
			for _, ev := range arr {
				if _, ok := field(ev, "at"); ok {
					withAt = true
				}
			}
		}
		actual, err := normalize(eventsJSON(e, events, withAt))
		if err != nil {
			return err
		}
		if !jsonEqual(expected, actual) {
			return fmt.Errorf("expected events %s, got %s", show(expected), show(actual))
		}
	}
	if err := exp.eq("state", s.b.State().String()); err != nil {
		return err
	}
	if exp.has("counted") || exp.has("failures") || exp.has("slow") || exp.has("consecutive_failures") {
		snap := s.b.Snapshot(e.now())
		for _, c := range []struct {
			key   string
			value any
		}{
			{"counted", snap.Window.Counted},
			{"failures", snap.Window.Failures},
			{"slow", snap.Window.Slow},
			{"consecutive_failures", snap.ConsecutiveFailures},
		} {
			if err := exp.eq(c.key, c.value); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *breakerSubject) acquire(e *env, exp *expect, events *[]breaker.Transition) (*breaker.Permit, error) {
	a := s.b.Acquire(e.now())
	if a.Transition != nil {
		*events = append(*events, *a.Transition)
	}
	if err := exp.eq("permitted", a.Permitted); err != nil {
		return nil, err
	}
	if a.Permitted {
		if err := exp.eq("probe", a.Permit.IsProbe()); err != nil {
			return nil, err
		}
		if err := exp.eq("shadow_rejected", a.Permit.ShadowRejected()); err != nil {
			return nil, err
		}
		return &a.Permit, exp.duration("retry_after", nil)
	}
	if err := exp.eq("probe", false); err != nil {
		return nil, err
	}
	if err := exp.eq("shadow_rejected", false); err != nil {
		return nil, err
	}
	var retryAfter *time.Duration
	if a.Rejection.RetryAfterKnown {
		retryAfter = &a.Rejection.RetryAfter
	}
	return nil, exp.duration("retry_after", retryAfter)
}

func (s *breakerSubject) step(e *env, action string, args any, exp *expect) error {
	var events []breaker.Transition
	add := func(t *breaker.Transition) {
		if t != nil {
			events = append(events, *t)
		}
	}
	switch action {
	case "acquire":
		permit, err := s.acquire(e, exp, &events)
		if err != nil {
			return err
		}
		if id, ok := field(args, "id"); ok && permit != nil {
			if id, ok := id.(string); ok {
				s.permits[id] = *permit
			}
		}
	case "record":
		id, err := strField(args, "id")
		if err != nil {
			return err
		}
		permit, ok := s.permits[id]
		if !ok {
			return fmt.Errorf("no permit with id `%s`", id)
		}
		delete(s.permits, id)
		d, err := durationField(args, "duration")
		if err != nil {
			return err
		}
		o, err := outcomeField(args)
		if err != nil {
			return err
		}
		add(s.b.Record(permit, o, deref(d), e.now()))
	case "call", "calls":
		count := uint64(1)
		if action == "calls" {
			n, ok, err := uintField(args, "count")
			if err != nil || !ok {
				return fmt.Errorf("`calls` needs a `count`")
			}
			count = n
		}
		o, err := outcomeField(args)
		if err != nil {
			return err
		}
		d, err := durationField(args, "duration")
		if err != nil {
			return err
		}
		var rejected uint64
		lastPermitted := true
		for i := uint64(0); i < count; i++ {
			a := s.b.Acquire(e.now())
			add(a.Transition)
			if a.Permitted {
				lastPermitted = true
				add(s.b.Record(a.Permit, o, deref(d), e.now()))
			} else {
				lastPermitted = false
				rejected++
			}
		}
		if action == "call" {
			if err := exp.eq("permitted", lastPermitted); err != nil {
				return err
			}
		} else if err := exp.eq("rejected", rejected); err != nil {
			return err
		}
	case "override":
		state, err := strField(args, "state")
		if err != nil {
			return err
		}
		var o breaker.Override
		switch state {
		case "forced_open":
			o = breaker.OverrideForcedOpen
		case "disabled":
			o = breaker.OverrideDisabled
		case "none":
			o = breaker.NoOverride
		default:
			return fmt.Errorf("unknown override `%s`: forced_open, disabled or none", state)
		}
		add(s.b.SetOverride(o, e.now()))
	case "reconfigure":
		config, ok := field(args, "config")
		if !ok {
			return fmt.Errorf("`reconfigure` needs a `config`")
		}
		raw, err := json.Marshal(config)
		if err != nil {
			return err
		}
		c, err := breaker.ParseConfig(raw)
		if err != nil {
			return fmt.Errorf("reconfigure: %w", err)
		}
		if err := s.g.Reconfigure("vector", c); err != nil {
			return err
		}
		s.b = s.g.Get("vector")
	case "mode":
		mode, err := strField(args, "mode")
		if err != nil {
			return err
		}
		switch mode {
		case "observe":
			s.b.SetMode(breaker.Observe)
		case "enforce":
			s.b.SetMode(breaker.Enforce)
		default:
			return fmt.Errorf("unknown mode `%s`", mode)
		}
	case "check":
	default:
		return fmt.Errorf("unknown breaker action `%s`", action)
	}
	return s.checkCommon(e, exp, events)
}

func deref(d *time.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return *d
}
