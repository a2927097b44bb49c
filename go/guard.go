package levee

import (
	"context"
	"errors"
)

// Guard is a policy in its two-step form: Allow asks permission for one call and returns done,
// to be called once with the call's outcome. *breaker.Breaker and *bulkhead.Bulkhead are
// Guards; so is any func of the same shape wrapped in GuardFunc.
type Guard interface {
	Allow(ctx context.Context) (done func(Outcome), err error)
}

// GuardFunc adapts a function to Guard.
type GuardFunc func(ctx context.Context) (done func(Outcome), err error)

// Allow calls f.
func (f GuardFunc) Allow(ctx context.Context) (func(Outcome), error) { return f(ctx) }

// Do runs fn under guards, outermost first: it asks each guard in order, stops at the first
// refusal (releasing the guards already passed with Rejected), runs fn, classifies its error
// with classify (OutcomeOf when nil) and reports that outcome to every guard, innermost first.
//
//	err := levee.Do(ctx, func(ctx context.Context) error { return callInventory(ctx) },
//		nil, bulkhead, breaker)
func Do(ctx context.Context, fn func(context.Context) error, classify func(error) Outcome, guards ...Guard) error {
	if classify == nil {
		classify = OutcomeOf
	}
	dones := make([]func(Outcome), 0, len(guards))
	release := func(o Outcome) {
		for i := len(dones) - 1; i >= 0; i-- {
			dones[i](o)
		}
	}
	for _, g := range guards {
		done, err := g.Allow(ctx)
		if err != nil {
			release(Rejected)
			return err
		}
		dones = append(dones, done)
	}
	err := fn(ctx)
	outcome := classify(err)
	if err != nil && errors.Is(err, context.Canceled) && ctx.Err() != nil {
		outcome = Cancelled
	}
	release(outcome)
	return err
}
