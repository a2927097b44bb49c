package levee_test

// Runner subjects for policies "rate_limit" and "deadline" (conformance/policies/rate_limit.md,
// deadline.md), as in the Rust runner's rate_limit.rs and deadline.rs.

import (
	"errors"
	"fmt"
	"time"

	"github.com/levee-dev/levee/go/deadline"
	"github.com/levee-dev/levee/go/ratelimit"
)

func init() {
	policies["rate_limit"] = newRateLimitSubject
	policies["deadline"] = newDeadlineSubject
}

type rateLimitSubject struct{ limiter *ratelimit.Limiter }

func newRateLimitSubject(config []byte, _ *env) (subject, error) {
	c, err := ratelimit.ParseConfig(config)
	if err != nil {
		return nil, configError(err)
	}
	l, err := ratelimit.New("vector", c)
	if err != nil {
		return nil, configError(err)
	}
	return &rateLimitSubject{limiter: l}, nil
}

// optString reads an optional string argument; null counts as absent.
func optString(args any, key string) (*string, error) {
	v, ok := field(args, key)
	if !ok || v == nil {
		return nil, nil
	}
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("`%s` must be a string or null, got %s", key, show(v))
	}
	return &s, nil
}

func (s *rateLimitSubject) step(e *env, action string, args any, exp *expect) error {
	key, err := optString(args, "key")
	if err != nil {
		return err
	}
	switch action {
	case "request":
		if err := knownArgs(args, "key"); err != nil {
			return err
		}
		d := s.limiter.Acquire(key, e.now())
		var retryAfter *time.Duration
		if !d.Allowed {
			retryAfter = &d.RetryAfter
		}
		if err := exp.eq("allowed", d.Allowed); err != nil {
			return err
		}
		if err := exp.duration("retry_after", retryAfter); err != nil {
			return err
		}
	case "requests":
		if err := knownArgs(args, "key", "count"); err != nil {
			return err
		}
		count, err := optCount(args, "count", 1)
		if err != nil {
			return err
		}
		var allowed uint64
		for i := uint64(0); i < count; i++ {
			if s.limiter.Acquire(key, e.now()).Allowed {
				allowed++
			}
		}
		if err := exp.eq("allowed_count", allowed); err != nil {
			return err
		}
		if err := exp.eq("limited_count", count-allowed); err != nil {
			return err
		}
	case "inspect":
		if err := knownArgs(args, "key"); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown rate_limit step `%s`", action)
	}
	if exp.has("available") {
		if err := exp.eq("available", s.limiter.Available(key, e.now())); err != nil {
			return err
		}
	}
	return exp.eq("tracked_keys", s.limiter.TrackedKeys())
}

type deadlineSubject struct{ deadline *deadline.Deadline }

func newDeadlineSubject(config []byte, _ *env) (subject, error) {
	v, err := decodeValue(config)
	if err != nil {
		return nil, err
	}
	if m, ok := v.(map[string]any); !ok || len(m) != 0 {
		return nil, fmt.Errorf("config: the deadline policy takes no config, got %s", show(v))
	}
	return &deadlineSubject{}, nil
}

func checkParse(d time.Duration, err error, exp *expect) error {
	if err == nil {
		return errors.Join(exp.duration("remaining", &d), exp.eq("error", nil))
	}
	var de *deadline.Error
	if !errors.As(err, &de) {
		return err
	}
	return errors.Join(exp.duration("remaining", nil), exp.eq("error", de.Kind.String()))
}

func requiredDuration(args any, key string) (time.Duration, error) {
	d, err := optDuration(args, key)
	if err != nil {
		return 0, err
	}
	if d == nil {
		return 0, fmt.Errorf("step needs a duration `%s`", key)
	}
	return *d, nil
}

func (s *deadlineSubject) step(e *env, action string, args any, exp *expect) error {
	switch action {
	case "parse_timeout_ms", "parse_grpc_timeout":
		if err := knownArgs(args, "value"); err != nil {
			return err
		}
		value, err := strField(args, "value")
		if err != nil {
			return err
		}
		if action == "parse_timeout_ms" {
			d, err := deadline.ParseTimeoutMs(value)
			return checkParse(d, err, exp)
		}
		d, err := deadline.ParseGRPCTimeout(value)
		return checkParse(d, err, exp)
	case "format_timeout_ms", "format_grpc_timeout":
		if err := knownArgs(args, "remaining"); err != nil {
			return err
		}
		d, err := requiredDuration(args, "remaining")
		if err != nil {
			return err
		}
		if action == "format_timeout_ms" {
			return exp.eq("value", deadline.FormatTimeoutMs(d))
		}
		return exp.eq("value", deadline.FormatGRPCTimeout(d))
	case "effective":
		if err := knownArgs(args, "route_timeout", "inbound"); err != nil {
			return err
		}
		route, err := optDuration(args, "route_timeout")
		if err != nil {
			return err
		}
		inbound, err := optDuration(args, "inbound")
		if err != nil {
			return err
		}
		return exp.duration("deadline", deadline.Effective(route, inbound))
	case "inbound":
		if err := knownArgs(args, "timeout_ms", "grpc_timeout", "route_timeout"); err != nil {
			return err
		}
		route, err := optDuration(args, "route_timeout")
		if err != nil {
			return err
		}
		ms, err := optString(args, "timeout_ms")
		if err != nil {
			return err
		}
		grpc, err := optString(args, "grpc_timeout")
		if err != nil {
			return err
		}
		inbound, perr := deadline.Inbound(ms, grpc)
		if perr != nil {
			s.deadline = nil
			var de *deadline.Error
			if !errors.As(perr, &de) {
				return perr
			}
			return errors.Join(exp.eq("error", de.Kind.String()), exp.eq("code", de.Code().String()), exp.duration("deadline", nil))
		}
		d := deadline.Effective(route, inbound)
		s.deadline = nil
		var code any
		if d != nil {
			dl := deadline.After(e.now(), *d)
			s.deadline = &dl
			if dl.IsSpent(e.now()) {
				code = "deadline_exceeded"
			}
		}
		return errors.Join(exp.eq("error", nil), exp.eq("code", code), exp.duration("deadline", d))
	case "outbound":
		if err := knownArgs(args); err != nil {
			return err
		}
		now := e.now()
		if s.deadline == nil {
			return errors.Join(exp.duration("remaining", nil), exp.eq("spent", false), exp.eq("timeout_ms", nil), exp.eq("grpc_timeout", nil))
		}
		remaining := s.deadline.Remaining(now)
		return errors.Join(exp.duration("remaining", &remaining), exp.eq("spent", s.deadline.IsSpent(now)),
			exp.eq("timeout_ms", deadline.FormatTimeoutMs(remaining)), exp.eq("grpc_timeout", deadline.FormatGRPCTimeout(remaining)))
	}
	return fmt.Errorf("unknown deadline step `%s`", action)
}
