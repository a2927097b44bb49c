package levee

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Outcome is how a guarded call ended (SPEC §1). Only Success, Failure and Timeout count
// toward breaker rates; Cancelled, Rejected and Ignored do not.
type Outcome uint8

// The six outcomes, in SPEC order.
const (
	Success   Outcome = iota // completed and classified as success
	Failure                  // an error, or a response classified as failure
	Timeout                  // the deadline or per-try timeout expired
	Cancelled                // the caller gave up
	Rejected                 // Levee refused the call
	Ignored                  // classified as neither success nor failure
)

// Outcomes lists every outcome, in SPEC order.
var Outcomes = [...]Outcome{Success, Failure, Timeout, Cancelled, Rejected, Ignored}

var outcomeNames = [...]string{"success", "failure", "timeout", "cancelled", "rejected", "ignored"}

// String returns the metric label and wire spelling.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// IsCounted reports whether the outcome counts toward breaker rates.
func (o Outcome) IsCounted() bool { return o == Success || o == Failure || o == Timeout }

// IsFailure reports whether the outcome counts as a failure in rates (failure and timeout).
func (o Outcome) IsFailure() bool { return o == Failure || o == Timeout }

// ParseOutcome reads the wire spelling.
func ParseOutcome(s string) (Outcome, error) {
	for i, n := range outcomeNames {
		if n == s {
			return Outcome(i), nil
		}
	}
	return 0, fmt.Errorf("unknown outcome `%s`: use success, failure, timeout, cancelled, rejected or ignored", s)
}

// MarshalText writes the wire spelling.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText reads the wire spelling.
func (o *Outcome) UnmarshalText(b []byte) error {
	v, err := ParseOutcome(string(b))
	if err != nil {
		return err
	}
	*o = v
	return nil
}

// AttemptKind is the kind of an AttemptResult.
type AttemptKind uint8

// The ways one attempt at an upstream can end, before classification.
const (
	AttemptStatus         AttemptKind = iota // the upstream answered with an HTTP status
	AttemptConnectFailure                    // the connection could not be made
	AttemptReset                             // the connection or stream was reset
	AttemptRefusedStream                     // HTTP/2 REFUSED_STREAM: not processed
	AttemptTimeout                           // the per-try timeout or the deadline expired
	AttemptCancelled                         // the caller went away
)

// AttemptResult is how one attempt at an upstream ended, before classification. Shared by
// outcome classification and retry decisions.
type AttemptResult struct {
	Kind   AttemptKind
	Status int // for AttemptStatus
}

// StatusResult is the result of an attempt answered with an HTTP status.
func StatusResult(status int) AttemptResult {
	return AttemptResult{Kind: AttemptStatus, Status: status}
}

// The attempt results without a status.
var (
	ConnectFailure  = AttemptResult{Kind: AttemptConnectFailure}
	Reset           = AttemptResult{Kind: AttemptReset}
	RefusedStream   = AttemptResult{Kind: AttemptRefusedStream}
	AttemptTimedOut = AttemptResult{Kind: AttemptTimeout}
	AttemptCancel   = AttemptResult{Kind: AttemptCancelled}
)

// Label returns the spelling used in config (retry_on) and vectors.
func (r AttemptResult) Label() string {
	switch r.Kind {
	case AttemptStatus:
		return strconv.Itoa(r.Status)
	case AttemptConnectFailure:
		return "connect_failure"
	case AttemptReset:
		return "reset"
	case AttemptRefusedStream:
		return "refused_stream"
	case AttemptTimeout:
		return "timeout"
	default:
		return "cancelled"
	}
}

// String returns Label.
func (r AttemptResult) String() string { return r.Label() }

// ParseAttemptResult reads the config and vector spelling: an HTTP status (100-599),
// connect_failure, reset, refused_stream, timeout or cancelled.
func ParseAttemptResult(s string) (AttemptResult, error) {
	switch s {
	case "connect_failure":
		return ConnectFailure, nil
	case "reset":
		return Reset, nil
	case "refused_stream":
		return RefusedStream, nil
	case "timeout":
		return AttemptTimedOut, nil
	case "cancelled":
		return AttemptCancel, nil
	}
	if code, ok := parseU16(s); ok && code >= 100 && code <= 599 {
		return StatusResult(int(code)), nil
	}
	return AttemptResult{}, fmt.Errorf("unknown attempt result `%s`: use an HTTP status (100-599), connect_failure, reset, refused_stream, timeout or cancelled", s)
}

// parseU16 parses a decimal u16 as Rust's str::parse::<u16> does: ASCII digits with an
// optional leading '+'.
func parseU16(s string) (uint16, bool) {
	s = strings.TrimPrefix(s, "+")
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 16)
	return uint16(v), err == nil
}

// StatusSet is a set of HTTP statuses written as single codes and inclusive ranges:
// [500-599, 429]. The zero value is the SPEC default failure set: 500, 502, 503, 504.
type StatusSet struct {
	ranges [][2]int
	set    bool
}

// DefaultFailureStatuses returns the SPEC default failure statuses: 500, 502, 503, 504.
func DefaultFailureStatuses() StatusSet {
	return StatusSet{ranges: [][2]int{{500, 500}, {502, 504}}, set: true}
}

func (s StatusSet) effective() [][2]int {
	if !s.set {
		return DefaultFailureStatuses().ranges
	}
	return s.ranges
}

// Contains reports whether status is in the set.
func (s StatusSet) Contains(status int) bool {
	for _, r := range s.effective() {
		if status >= r[0] && status <= r[1] {
			return true
		}
	}
	return false
}

// ParseStatusItem parses one item: "503", "500-599", "5xx" or "4xx".
func ParseStatusItem(item string) (lo, hi int, err error) {
	bad := fmt.Errorf("invalid status `%s`: write a status such as `503` or a range such as `500-599`", item)
	parse := func(t string) (int, error) {
		v, ok := parseU16(strings.TrimSpace(t))
		if !ok {
			return 0, bad
		}
		if v < 100 || v > 599 {
			return 0, fmt.Errorf("status %d is outside 100-599", v)
		}
		return int(v), nil
	}
	t := strings.TrimSpace(item)
	if strings.EqualFold(t, "5xx") {
		return 500, 599, nil
	}
	if strings.EqualFold(t, "4xx") {
		return 400, 499, nil
	}
	if a, b, ok := strings.Cut(t, "-"); ok {
		if lo, err = parse(a); err != nil {
			return 0, 0, err
		}
		if hi, err = parse(b); err != nil {
			return 0, 0, err
		}
		if lo > hi {
			return 0, 0, fmt.Errorf("status range `%s` is backwards: write `%d-%d`", item, hi, lo)
		}
		return lo, hi, nil
	}
	v, err := parse(t)
	return v, v, err
}

// ParseStatusSet builds a set from items such as "500-599" and "429".
func ParseStatusSet(items ...string) (StatusSet, error) {
	s := StatusSet{ranges: [][2]int{}, set: true}
	for _, item := range items {
		lo, hi, err := ParseStatusItem(item)
		if err != nil {
			return StatusSet{}, err
		}
		s.ranges = append(s.ranges, [2]int{lo, hi})
	}
	return s, nil
}

// MustStatusSet is ParseStatusSet for literals; it panics on a bad item.
func MustStatusSet(items ...string) StatusSet {
	s, err := ParseStatusSet(items...)
	if err != nil {
		panic(err)
	}
	return s
}

// StatusItems reads a JSON list whose items are status numbers (503) or text ("500-599",
// "reset") as text, for the parsers of status sets and retry_on; example names a valid item
// for the error message.
func StatusItems(b []byte, example string) ([]string, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(b, &items); err != nil {
		return nil, fmt.Errorf("invalid type: expected a list such as [%s]", example)
	}
	texts := make([]string, 0, len(items))
	for _, raw := range items {
		var code uint16
		if err := json.Unmarshal(raw, &code); err == nil {
			texts = append(texts, strconv.Itoa(int(code)))
			continue
		}
		var text string
		if err := json.Unmarshal(raw, &text); err != nil {
			return nil, fmt.Errorf("data did not match any variant: write an item such as %s", example)
		}
		texts = append(texts, text)
	}
	return texts, nil
}

// UnmarshalJSON reads a list whose items are numbers or strings: [503, "500-599"].
func (s *StatusSet) UnmarshalJSON(b []byte) error {
	texts, err := StatusItems(b, `503 or "500-599"`)
	if err != nil {
		return err
	}
	set, err := ParseStatusSet(texts...)
	if err != nil {
		return err
	}
	*s = set
	return nil
}

// MarshalJSON writes the set as a list of strings and ranges.
func (s StatusSet) MarshalJSON() ([]byte, error) {
	items := []string{}
	for _, r := range s.effective() {
		if r[0] == r[1] {
			items = append(items, strconv.Itoa(r[0]))
		} else {
			items = append(items, fmt.Sprintf("%d-%d", r[0], r[1]))
		}
	}
	return json.Marshal(items)
}

// Classify classifies an attempt's result with the given failure statuses (SPEC §1).
func Classify(r AttemptResult, failureStatuses StatusSet) Outcome {
	switch r.Kind {
	case AttemptStatus:
		if failureStatuses.Contains(r.Status) {
			return Failure
		}
		return Success
	case AttemptConnectFailure, AttemptReset, AttemptRefusedStream:
		return Failure
	case AttemptTimeout:
		return Timeout
	default:
		return Cancelled
	}
}

// ClassifyStatus classifies an HTTP status with the given failure statuses.
func ClassifyStatus(status int, failureStatuses StatusSet) Outcome {
	return Classify(StatusResult(status), failureStatuses)
}

// gRPC status codes (the canonical numbering) that classification cares about.
const (
	GRPCOK                = 0
	GRPCCancelled         = 1
	GRPCUnknown           = 2
	GRPCDeadlineExceeded  = 4
	GRPCResourceExhausted = 8
	GRPCInternal          = 13
	GRPCUnavailable       = 14
)

// ClassifyGRPC classifies a gRPC status code (SPEC §1): UNAVAILABLE, INTERNAL, UNKNOWN and
// RESOURCE_EXHAUSTED are failures, DEADLINE_EXCEEDED a timeout, CANCELLED cancelled, every
// other code a success.
func ClassifyGRPC(code uint32) Outcome {
	switch code {
	case GRPCUnavailable, GRPCInternal, GRPCUnknown, GRPCResourceExhausted:
		return Failure
	case GRPCDeadlineExceeded:
		return Timeout
	case GRPCCancelled:
		return Cancelled
	}
	return Success
}
