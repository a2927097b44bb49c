// Package deadline carries deadlines as remaining time (SPEC §5), a port of levee-core's
// deadline module proved identical by the conformance vectors, plus the mapping to and from
// context.Context.
//
// Inbound, Levee reads levee-timeout-ms (whole milliseconds) or grpc-timeout; the call's
// deadline is the shorter of the route's timeout and the inbound remaining time (Effective).
// Outbound, it writes what is left at the moment of sending (FormatTimeoutMs,
// FormatGRPCTimeout). A remaining time of zero means the deadline is already spent: the call
// is rejected with deadline_exceeded before any upstream work.
//
//   - Every remaining time is capped at MaxRemaining (2^63 − 1 ns, the largest time.Duration).
//   - levee-timeout-ms: 1 to 18 ASCII digits, nothing else; surrounding spaces and tabs are
//     ignored. Written as floor(remaining / 1ms): Levee never promises more time than is left.
//   - grpc-timeout: 1 to 8 ASCII digits and one unit H M S m u n. Written as grpc-go does:
//     the smallest unit whose value, rounded up, fits in 8 digits.
//   - A malformed header is a *Error with a Kind (empty, negative, not_a_number, too_long,
//     missing_unit, unknown_unit) and a message naming the header and the fix; the edge
//     answers bad_request. Parsing never panics.
package deadline

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/levee-dev/levee/go"
)

// MaxRemaining is the longest remaining time any implementation holds: 2^63 − 1 nanoseconds.
const MaxRemaining = time.Duration(math.MaxInt64)

// Header digit limits.
const (
	MaxTimeoutMsDigits = 18 // most digits accepted in levee-timeout-ms
	MaxGRPCDigits      = 8  // most digits accepted in grpc-timeout
)

// Kind says what was wrong with a deadline header.
type Kind uint8

// The ways a deadline header can be malformed.
const (
	Empty       Kind = iota + 1 // no value, or only spaces
	Negative                    // a leading '-'
	NotANumber                  // anything but ASCII digits where digits belong
	TooLong                     // more digits than the header allows
	MissingUnit                 // grpc-timeout digits without a unit
	UnknownUnit                 // grpc-timeout with a unit other than H M S m u n
)

// String returns the snake_case spelling used in vectors and logs.
func (k Kind) String() string {
	return [...]string{"", "empty", "negative", "not_a_number", "too_long", "missing_unit", "unknown_unit"}[min(int(k), 6)]
}

// Error is a malformed levee-timeout-ms or grpc-timeout header. The edge answers it with
// bad_request.
type Error struct {
	Header string // the header's name
	Kind   Kind
	Value  string // the value as received, cut at 64 characters
}

func newError(header string, kind Kind, value string) *Error {
	if utf8.RuneCountInString(value) > 64 {
		n := 0
		for i := range value {
			if n == 64 {
				value = value[:i]
				break
			}
			n++
		}
	}
	return &Error{Header: header, Kind: kind, Value: value}
}

// Code returns the SPEC §7 code the edge answers with: bad_request.
func (e *Error) Code() levee.Code { return levee.CodeBadRequest }

// Is makes errors.Is(err, levee.ErrBadRequest) true.
func (e *Error) Is(target error) bool { return target == levee.ErrBadRequest }

// escapeDebug escapes the value as Rust's str::escape_debug does, near enough for messages.
func escapeDebug(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		case '\n':
			b.WriteString(`\n`)
		case '\\', '\'', '"':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			if unicode.IsPrint(r) || r == ' ' {
				b.WriteRune(r)
			} else {
				fmt.Fprintf(&b, `\u{%x}`, r)
			}
		}
	}
	return b.String()
}

func (e *Error) Error() string {
	h, v := e.Header, escapeDebug(e.Value)
	fix := "send the remaining time as whole milliseconds, digits only, such as `levee-timeout-ms: 250`"
	limit := MaxTimeoutMsDigits
	if h == levee.HeaderGRPCTimeout {
		fix = "send 1 to 8 digits and a unit (H, M, S, m, u or n), such as `grpc-timeout: 250m`"
		limit = MaxGRPCDigits
	}
	switch e.Kind {
	case Empty:
		return fmt.Sprintf("%s header is empty: %s", h, fix)
	case Negative:
		return fmt.Sprintf("%s header `%s` is negative: %s; send 0 if no time is left", h, v, fix)
	case NotANumber:
		return fmt.Sprintf("%s header `%s` is not a whole number: %s", h, v, fix)
	case TooLong:
		return fmt.Sprintf("%s header `%s` has more than %d digits: %s", h, v, limit, fix)
	case MissingUnit:
		return fmt.Sprintf("%s header `%s` has no unit: %s", h, v, fix)
	}
	return fmt.Sprintf("%s header `%s` has an unknown unit: %s", h, v, fix)
}

func trimOWS(v string) string { return strings.Trim(v, " \t") }

// digitsForm says what is wrong with the form of digits (ignoring length), if anything.
func digitsForm(digits string) Kind {
	if strings.HasPrefix(digits, "-") {
		return Negative
	}
	if digits == "" {
		return NotANumber
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return NotANumber
		}
	}
	return 0
}

func parseDigits(header, value, digits string, maxDigits int) (uint64, error) {
	if k := digitsForm(digits); k != 0 {
		return 0, newError(header, k, value)
	}
	if len(digits) > maxDigits {
		return 0, newError(header, TooLong, value)
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, newError(header, TooLong, value)
	}
	return n, nil
}

// capped multiplies count by unit nanoseconds, capped at MaxRemaining.
func capped(count, unit uint64) time.Duration {
	if unit != 0 && count > uint64(MaxRemaining)/unit {
		return MaxRemaining
	}
	return time.Duration(count * unit)
}

// ParseTimeoutMs reads levee-timeout-ms: the remaining time in whole milliseconds (0 =
// already spent).
func ParseTimeoutMs(value string) (time.Duration, error) {
	text := trimOWS(value)
	if text == "" {
		return 0, newError(levee.HeaderTimeoutMs, Empty, value)
	}
	ms, err := parseDigits(levee.HeaderTimeoutMs, value, text, MaxTimeoutMsDigits)
	if err != nil {
		return 0, err
	}
	return capped(ms, uint64(time.Millisecond)), nil
}

// FormatTimeoutMs writes levee-timeout-ms: whole milliseconds, rounded down (negative counts
// as zero).
func FormatTimeoutMs(remaining time.Duration) string {
	return strconv.FormatInt(int64(max(remaining, 0)/time.Millisecond), 10)
}

func grpcUnit(u rune) uint64 {
	switch u {
	case 'H':
		return uint64(time.Hour)
	case 'M':
		return uint64(time.Minute)
	case 'S':
		return uint64(time.Second)
	case 'm':
		return uint64(time.Millisecond)
	case 'u':
		return uint64(time.Microsecond)
	case 'n':
		return 1
	}
	return 0
}

// ParseGRPCTimeout reads grpc-timeout: 1 to 8 digits and a unit (H hours, M minutes,
// S seconds, m milliseconds, u microseconds, n nanoseconds).
func ParseGRPCTimeout(value string) (time.Duration, error) {
	h := levee.HeaderGRPCTimeout
	text := trimOWS(value)
	if text == "" {
		return 0, newError(h, Empty, value)
	}
	unit, size := utf8.DecodeLastRuneInString(text)
	if unit >= '0' && unit <= '9' {
		// Digits only: report a sign or a stray character first, else the missing unit.
		k := digitsForm(text)
		if k == 0 {
			k = MissingUnit
		}
		return 0, newError(h, k, value)
	}
	digits := text[:len(text)-size]
	unitNanos := grpcUnit(unit)
	if unitNanos == 0 {
		k := digitsForm(digits)
		if k == 0 {
			k = UnknownUnit
		}
		return 0, newError(h, k, value)
	}
	count, err := parseDigits(h, value, digits, MaxGRPCDigits)
	if err != nil {
		return 0, err
	}
	return capped(count, unitNanos), nil
}

// FormatGRPCTimeout writes grpc-timeout as grpc-go's encodeTimeout does: zero (or less) is
// 0n; otherwise the first of n u m S M H whose value, rounded up, is at most 99 999 999.
func FormatGRPCTimeout(remaining time.Duration) string {
	if remaining <= 0 {
		return "0n"
	}
	nanos := uint64(remaining)
	const maxValue = 99_999_999
	for _, u := range []struct {
		unit byte
		size uint64
	}{{'n', 1}, {'u', 1_000}, {'m', 1_000_000}, {'S', 1_000_000_000}, {'M', 60_000_000_000}} {
		if v := (nanos + u.size - 1) / u.size; v <= maxValue {
			return strconv.FormatUint(v, 10) + string(u.unit)
		}
	}
	const hour = 3_600_000_000_000
	return strconv.FormatUint((nanos+hour-1)/hour, 10) + "H"
}

// Effective returns the call's deadline: the shorter of the route's timeout and the inbound
// remaining time; nil when neither is set.
func Effective(routeTimeout, inbound *time.Duration) *time.Duration {
	var d time.Duration
	switch {
	case routeTimeout != nil && inbound != nil:
		d = min(*routeTimeout, *inbound)
	case routeTimeout != nil:
		d = *routeTimeout
	case inbound != nil:
		d = *inbound
	default:
		return nil
	}
	d = min(d, MaxRemaining)
	return &d
}

// Inbound returns the inbound remaining time from the values of levee-timeout-ms and/or
// grpc-timeout (nil when a header is absent). When both are present, both must be well formed
// and the shorter applies. A nil result with a nil error: the caller sent no deadline.
func Inbound(timeoutMs, grpcTimeout *string) (*time.Duration, error) {
	var ms, grpc *time.Duration
	if timeoutMs != nil {
		d, err := ParseTimeoutMs(*timeoutMs)
		if err != nil {
			return nil, err
		}
		ms = &d
	}
	if grpcTimeout != nil {
		d, err := ParseGRPCTimeout(*grpcTimeout)
		if err != nil {
			return nil, err
		}
		grpc = &d
	}
	return Effective(ms, grpc), nil
}

// Deadline is a deadline fixed on the monotonic clock, from which the remaining time can be
// read later.
type Deadline struct {
	ExpiresAt levee.Timestamp
}

// After returns the deadline remaining after now.
func After(now levee.Timestamp, remaining time.Duration) Deadline {
	return Deadline{ExpiresAt: now.Add(min(max(remaining, 0), MaxRemaining))}
}

// Remaining returns the time left at now; zero once expired.
func (d Deadline) Remaining(now levee.Timestamp) time.Duration { return d.ExpiresAt.Since(now) }

// IsSpent reports whether no time is left at now (reject with deadline_exceeded).
func (d Deadline) IsSpent(now levee.Timestamp) bool { return d.Remaining(now) == 0 }
