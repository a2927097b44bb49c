package levee_test

// Runner subjects for the shared vocabulary: outcome (classification), duration (duration
// strings), error (the error catalogue) and names (public strings), as in the Rust runner's
// vocabulary.rs.

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
)

func init() {
	policies["outcome"] = newOutcomeSubject
	policies["duration"] = func([]byte, *env) (subject, error) { return durationSubject{}, nil }
	policies["error"] = func([]byte, *env) (subject, error) { return errorSubject{}, nil }
	policies["names"] = func([]byte, *env) (subject, error) { return namesSubject{}, nil }
}

type outcomeSubject struct{ statuses levee.StatusSet }

func newOutcomeSubject(config []byte, _ *env) (subject, error) {
	var c struct {
		FailureStatuses *levee.StatusSet `json:"failure_statuses"`
	}
	if err := levee.UnmarshalConfig(config, &c); err != nil {
		return nil, configError(err)
	}
	s := outcomeSubject{statuses: levee.DefaultFailureStatuses()}
	if c.FailureStatuses != nil {
		s.statuses = *c.FailureStatuses
	}
	return s, nil
}

func (s outcomeSubject) step(_ *env, action string, args any, exp *expect) error {
	var outcome levee.Outcome
	switch action {
	case "classify":
		var text string
		switch v, _ := field(args, "result"); r := v.(type) {
		case json.Number:
			text = r.String()
		case string:
			text = r
		default:
			return errors.New("`classify` needs a `result`")
		}
		result, err := levee.ParseAttemptResult(text)
		if err != nil {
			return err
		}
		outcome = levee.Classify(result, s.statuses)
	case "classify_grpc":
		code, ok, err := uintField(args, "code")
		if err != nil || !ok {
			return errors.New("`classify_grpc` needs a numeric `code`")
		}
		if code > 1<<32-1 {
			return fmt.Errorf("code %d does not fit in u32", code)
		}
		outcome = levee.ClassifyGRPC(uint32(code))
	case "slow":
		d, err := durationField(args, "duration")
		if err != nil {
			return err
		}
		if d == nil {
			return errors.New("`slow` needs a `duration`")
		}
		threshold, err := durationField(args, "slow_call_duration")
		if err != nil {
			return err
		}
		if threshold == nil {
			return errors.New("`slow` needs `slow_call_duration`")
		}
		return exp.eq("slow", *d >= *threshold)
	default:
		return fmt.Errorf("unknown outcome action `%s`", action)
	}
	if err := exp.eq("outcome", outcome.String()); err != nil {
		return err
	}
	if err := exp.eq("counted", outcome.IsCounted()); err != nil {
		return err
	}
	return exp.eq("failure", outcome.IsFailure())
}

type durationSubject struct{}

func durationErrorKind(err error) string {
	var de *levee.DurationError
	if !errors.As(err, &de) {
		return "unknown"
	}
	return [...]string{"", "empty", "bare_number", "negative", "unknown_unit", "malformed", "overflow"}[de.Kind]
}

func (durationSubject) step(_ *env, action string, args any, exp *expect) error {
	switch action {
	case "parse":
		value, err := strField(args, "value")
		if err != nil {
			return err
		}
		d, perr := levee.ParseDuration(value)
		if perr == nil {
			if err := exp.eq("nanos", int64(d)); err != nil {
				return err
			}
			return exp.eq("error", nil)
		}
		if err := exp.eq("error", durationErrorKind(perr)); err != nil {
			return err
		}
		if needle, ok := exp.get("message_contains"); ok {
			n, _ := needle.(string)
			if !strings.Contains(perr.Error(), n) {
				return fmt.Errorf("message `%s` does not contain `%s`", perr, n)
			}
		}
		return exp.eq("nanos", nil)
	case "format":
		nanos, ok, err := uintField(args, "nanos")
		if err != nil || !ok {
			return errors.New("`format` needs integer `nanos`")
		}
		if nanos > 1<<63-1 {
			return fmt.Errorf("nanos %d is beyond time.Duration (about 292 years)", nanos)
		}
		return exp.eq("value", levee.FormatDuration(time.Duration(nanos)))
	}
	return fmt.Errorf("unknown duration action `%s`", action)
}

type errorSubject struct{}

func (errorSubject) step(_ *env, action string, args any, exp *expect) error {
	if action != "describe" {
		return fmt.Errorf("unknown error action `%s`", action)
	}
	text, err := strField(args, "code")
	if err != nil {
		return err
	}
	code, ok := levee.ParseCode(text)
	if !ok {
		return fmt.Errorf("unknown error code `%s`", text)
	}
	upstream, _, _ := optStrField(args, "upstream")
	retryAfter, err := durationField(args, "retry_after")
	if err != nil {
		return err
	}
	detail := code.Detail(upstream)
	var retryAfterS any
	if retryAfter != nil {
		detail = code.Detail(upstream, *retryAfter)
		retryAfterS = levee.RetryAfterSeconds(*retryAfter)
	}
	checks := []struct {
		key   string
		value any
	}{
		{"status", code.Status()},
		{"type", code.TypeURI()},
		{"title", code.Title()},
		{"degraded", code.Degraded()},
		{"detail", detail},
		{"retry_after_s", retryAfterS},
	}
	for _, c := range checks {
		if err := exp.eq(c.key, c.value); err != nil {
			return err
		}
	}
	return nil
}

type namesSubject struct{}

func strs[T fmt.Stringer](items []T) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.String()
	}
	return out
}

func (namesSubject) step(_ *env, action string, _ any, exp *expect) error {
	if action != "list" {
		return fmt.Errorf("unknown names action `%s`", action)
	}
	checks := []struct {
		key   string
		value any
	}{
		{"metrics", levee.MetricNames[:]},
		{"headers", []string{
			levee.HeaderTimeoutMs, levee.HeaderGRPCTimeout, levee.HeaderCriticality,
			levee.HeaderDegraded, levee.HeaderRetryAfter, levee.HeaderIdempotencyKey,
			levee.HeaderTraceparent, levee.HeaderTracestate, levee.HeaderRequestID,
		}},
		{"outcomes", strs(levee.Outcomes[:])},
		{"breaker_states", strs(breaker.States[:])},
		{"transition_reasons", strs(breaker.Reasons[:])},
		{"error_codes", strs(levee.Codes[:])},
		{"criticalities", strs(levee.Criticalities[:])},
		{"language", levee.Language},
	}
	for _, c := range checks {
		if err := exp.eq(c.key, c.value); err != nil {
			return err
		}
	}
	return nil
}
