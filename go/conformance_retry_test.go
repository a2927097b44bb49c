package levee_test

// Runner subjects for policies "retry" and "retry_budget" (conformance/policies/retry.md,
// retry_budget.md), as in the Rust runner's retry.rs.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/retry"
)

func init() {
	policies["retry"] = newRetrySubject
	policies["retry_budget"] = newBudgetSubject
}

// knownArgs fails on argument keys the step does not know, so a typo cannot pass silently.
// null arguments are accepted by steps that take none.
func knownArgs(args any, known ...string) error {
	switch m := args.(type) {
	case map[string]any:
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ok := false
			for _, n := range known {
				ok = ok || n == k
			}
			if !ok {
				return fmt.Errorf("unknown argument `%s` (this step takes %q)", k, known)
			}
		}
		return nil
	case nil:
		if len(known) == 0 {
			return nil
		}
	}
	return fmt.Errorf("arguments must be an object, got %s", show(args))
}

// optDuration reads an optional duration argument; null counts as absent.
func optDuration(args any, key string) (*time.Duration, error) {
	v, ok := field(args, key)
	if !ok || v == nil {
		return nil, nil
	}
	d, err := durationValue(v)
	if err != nil {
		return nil, fmt.Errorf("`%s`: %v", key, err)
	}
	return &d, nil
}

// optBool reads an optional boolean argument with a default.
func optBool(args any, key string, def bool) (bool, error) {
	v, ok := field(args, key)
	if !ok || v == nil {
		return def, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("`%s` must be true or false, got %s", key, show(v))
	}
	return b, nil
}

// optCount reads an optional non-negative integer argument with a default.
func optCount(args any, key string, def uint64) (uint64, error) {
	v, ok := field(args, key)
	if !ok || v == nil {
		return def, nil
	}
	n, ok, err := uintField(args, key)
	if err != nil || !ok {
		return 0, fmt.Errorf("`%s` must be a whole number, got %s", key, show(v))
	}
	return n, nil
}

func checkBudget(b *retry.Budget, e *env, exp *expect) error {
	s := b.Snapshot(e.now())
	if err := exp.eq("deposits", s.Deposits); err != nil {
		return err
	}
	if err := exp.eq("retries", s.Retries); err != nil {
		return err
	}
	return exp.eq("available", s.Available)
}

func deposit(b *retry.Budget, e *env, args any) error {
	if err := knownArgs(args, "count"); err != nil {
		return err
	}
	n, err := optCount(args, "count", 1)
	if err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		b.Deposit(e.now())
	}
	return nil
}

type retrySubject struct {
	policy *retry.Policy
	budget *retry.Budget
}

func newRetrySubject(config []byte, e *env) (subject, error) {
	c, err := retry.ParseConfig(config)
	if err != nil {
		return nil, configError(err)
	}
	p, err := retry.New(c)
	if err != nil {
		return nil, configError(err)
	}
	return &retrySubject{policy: p, budget: p.NewBudget(e.now())}, nil
}

// attemptResultField reads the step's result: a string ("503", "reset") or an integer status.
func attemptResultField(args any) (levee.AttemptResult, error) {
	switch v, _ := field(args, "result"); r := v.(type) {
	case string:
		return levee.ParseAttemptResult(r)
	case json.Number:
		return levee.ParseAttemptResult(r.String())
	}
	return levee.AttemptResult{}, errors.New("step needs a `result`: a status or connect_failure, reset, refused_stream, timeout, cancelled")
}

func attemptsField(args any) (uint32, error) {
	n, ok, err := uintField(args, "attempts_made")
	if err != nil || !ok || n > math.MaxUint32 {
		return 0, errors.New("step needs a whole number `attempts_made`")
	}
	return uint32(n), nil
}

func (s *retrySubject) step(e *env, action string, args any, exp *expect) error {
	switch action {
	case "decide":
		if err := knownArgs(args, "attempts_made", "result", "idempotent", "remaining", "breaker_open", "retry_after", "previous_backoff"); err != nil {
			return err
		}
		attempts, err := attemptsField(args)
		if err != nil {
			return err
		}
		result, err := attemptResultField(args)
		if err != nil {
			return err
		}
		in := retry.Input{AttemptsMade: attempts, Result: result}
		if in.Idempotent, err = optBool(args, "idempotent", true); err != nil {
			return err
		}
		if in.Remaining, err = optDuration(args, "remaining"); err != nil {
			return err
		}
		if in.BreakerOpen, err = optBool(args, "breaker_open", false); err != nil {
			return err
		}
		if in.RetryAfter, err = optDuration(args, "retry_after"); err != nil {
			return err
		}
		if in.PreviousBackoff, err = optDuration(args, "previous_backoff"); err != nil {
			return err
		}
		d := s.policy.Decide(in, s.budget, e.now(), e.random)
		var checks []error
		if d.Retry {
			checks = []error{exp.eq("decision", "retry"), exp.duration("after", &d.After),
				exp.duration("backoff", &d.Backoff), exp.eq("reason", nil)}
		} else {
			checks = []error{exp.eq("decision", "give_up"), exp.duration("after", nil),
				exp.duration("backoff", nil), exp.eq("reason", d.Reason.String())}
		}
		if err := errors.Join(checks...); err != nil {
			return err
		}
		return checkBudget(s.budget, e, exp)
	case "backoff":
		if err := knownArgs(args, "attempts_made", "previous_backoff"); err != nil {
			return err
		}
		attempts, err := attemptsField(args)
		if err != nil {
			return err
		}
		previous, err := optDuration(args, "previous_backoff")
		if err != nil {
			return err
		}
		b := retry.Backoff(s.policy.Config().Backoff, attempts, previous, e.random)
		return exp.duration("backoff", &b)
	case "deposit":
		if err := deposit(s.budget, e, args); err != nil {
			return err
		}
		return checkBudget(s.budget, e, exp)
	case "budget":
		if err := knownArgs(args); err != nil {
			return err
		}
		return checkBudget(s.budget, e, exp)
	case "parse_retry_after":
		if err := knownArgs(args, "value", "now_unix"); err != nil {
			return err
		}
		value, err := strField(args, "value")
		if err != nil {
			return err
		}
		now, err := optCount(args, "now_unix", 0)
		if err != nil {
			return err
		}
		var got *time.Duration
		if d, ok := retry.ParseRetryAfter(value, now); ok {
			got = &d
		}
		return exp.duration("retry_after", got)
	case "idempotent":
		if err := knownArgs(args, "method", "idempotency_key"); err != nil {
			return err
		}
		method, err := strField(args, "method")
		if err != nil {
			return err
		}
		hasKey, err := optBool(args, "idempotency_key", false)
		if err != nil {
			return err
		}
		return exp.eq("idempotent", retry.IsIdempotent(method, hasKey))
	}
	return fmt.Errorf("unknown retry step `%s`", action)
}

type budgetSubject struct{ budget *retry.Budget }

func newBudgetSubject(config []byte, e *env) (subject, error) {
	c, err := retry.ParseBudgetConfig(config)
	if err != nil {
		return nil, configError(err)
	}
	return &budgetSubject{budget: retry.NewBudget(c, e.now())}, nil
}

func (s *budgetSubject) step(e *env, action string, args any, exp *expect) error {
	switch action {
	case "deposit":
		if err := deposit(s.budget, e, args); err != nil {
			return err
		}
	case "withdraw":
		if err := knownArgs(args, "count"); err != nil {
			return err
		}
		count, err := optCount(args, "count", 1)
		if err != nil {
			return err
		}
		if count != 1 && exp.has("allowed") {
			return errors.New("`allowed` needs a single withdrawal: use `allowed_count` with `count`")
		}
		var allowed uint64
		for i := uint64(0); i < count; i++ {
			if s.budget.TryWithdraw(e.now()) {
				allowed++
			}
		}
		if err := exp.eq("allowed", allowed == 1); err != nil {
			return err
		}
		if err := exp.eq("allowed_count", allowed); err != nil {
			return err
		}
	case "snapshot":
		if err := knownArgs(args); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown retry_budget step `%s`", action)
	}
	return checkBudget(s.budget, e, exp)
}
