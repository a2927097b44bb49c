package levee

import (
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"
)

// DurationErrorKind says why a duration string was rejected.
type DurationErrorKind uint8

// The ways a duration string can be wrong, as in levee-core's duration::DurationError.
const (
	DurationEmpty       DurationErrorKind = iota + 1 // empty or only whitespace
	DurationBareNumber                               // a number without a unit, such as "250"
	DurationNegative                                 // a leading minus sign
	DurationUnknownUnit                              // a unit that is not ns us µs ms s m h
	DurationMalformed                                // not a sequence of <number><unit>
	DurationOverflow                                 // longer than time.Duration can hold
)

// DurationError is returned by ParseDuration. Its message says what was wrong and shows the
// fix, in the same words as levee-core.
type DurationError struct {
	Kind  DurationErrorKind
	Input string // the trimmed input
	Unit  string // the unit as written, for DurationUnknownUnit
}

func (e *DurationError) Error() string {
	switch e.Kind {
	case DurationEmpty:
		return "empty duration: write a number with a unit, such as `250ms` or `5s`"
	case DurationBareNumber:
		return fmt.Sprintf("duration `%s` has no unit: write `%sms` or `%ss` (units: ns, us, ms, s, m, h)", e.Input, e.Input, e.Input)
	case DurationNegative:
		return fmt.Sprintf("duration `%s` is negative: durations count time forward, write `%s`", e.Input, strings.TrimLeft(e.Input, "-"))
	case DurationUnknownUnit:
		return fmt.Sprintf("duration `%s` has unknown unit `%s`: use one of ns, us, ms, s, m, h", e.Input, e.Unit)
	case DurationMalformed:
		return fmt.Sprintf("duration `%s` is not a number followed by a unit: write e.g. `250ms`, `1.5s` or `1m30s`", e.Input)
	default:
		// Go's time.Duration holds about 292 years; levee-core's limit is about 584.
		return fmt.Sprintf("duration `%s` is too long: the limit is about 292 years", e.Input)
	}
}

var (
	u128Max  = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))
	maxNanos = big.NewInt(math.MaxInt64)
)

func isDigitOrDot(r rune) bool { return (r >= '0' && r <= '9') || r == '.' }

// ParseDuration parses a duration string (SPEC preamble): "250ms", "5s", "2m", "1m30s",
// "1.5s". Units are ns, us (or µs), ms, s, m and h; a value may chain several and use decimals.
// A bare number is rejected, "0" included. A fraction contributes floor(fraction × unit)
// nanoseconds, computed exactly. The rules and messages are those of levee-core's
// duration::parse, except that the longest duration is time.Duration's (about 292 years).
func ParseDuration(input string) (time.Duration, error) {
	text := strings.TrimSpace(input)
	if text == "" {
		return 0, &DurationError{Kind: DurationEmpty}
	}
	if strings.HasPrefix(text, "-") {
		return 0, &DurationError{Kind: DurationNegative, Input: text}
	}
	allNumeric, anyDigit := true, false
	for _, r := range text {
		if !isDigitOrDot(r) {
			allNumeric = false
		}
		if r >= '0' && r <= '9' {
			anyDigit = true
		}
	}
	if allNumeric && anyDigit {
		return 0, &DurationError{Kind: DurationBareNumber, Input: text}
	}
	malformed := &DurationError{Kind: DurationMalformed, Input: text}
	overflow := &DurationError{Kind: DurationOverflow, Input: text}
	total := new(big.Int)
	rest := text
	for rest != "" {
		numberLen := strings.IndexFunc(rest, func(r rune) bool { return !isDigitOrDot(r) })
		if numberLen < 0 {
			numberLen = len(rest)
		}
		number, after := rest[:numberLen], rest[numberLen:]
		if number == "" || number == "." {
			return 0, malformed
		}
		unitLen := strings.IndexFunc(after, isDigitOrDot)
		if unitLen < 0 {
			unitLen = len(after)
		}
		unit, next := after[:unitLen], after[unitLen:]
		var unitNanos int64
		switch unit {
		case "ns":
			unitNanos = 1
		case "us", "µs", "μs":
			unitNanos = 1_000
		case "ms":
			unitNanos = 1_000_000
		case "s":
			unitNanos = 1_000_000_000
		case "m":
			unitNanos = 60_000_000_000
		case "h":
			unitNanos = 3_600_000_000_000
		case "":
			return 0, malformed
		default:
			return 0, &DurationError{Kind: DurationUnknownUnit, Input: text, Unit: unit}
		}
		whole, fraction, _ := strings.Cut(number, ".")
		if strings.Contains(fraction, ".") || (whole == "" && fraction == "") {
			return 0, malformed
		}
		w := new(big.Int)
		if whole != "" {
			if _, ok := w.SetString(whole, 10); !ok || w.Cmp(u128Max) > 0 {
				return 0, overflow
			}
		}
		w.Mul(w, big.NewInt(unitNanos))
		if w.Cmp(u128Max) > 0 {
			return 0, overflow
		}
		total.Add(total, w)
		if total.Cmp(u128Max) > 0 {
			return 0, overflow
		}
		scale := unitNanos
		for _, digit := range fraction {
			scale /= 10
			if scale == 0 {
				break
			}
			total.Add(total, big.NewInt(int64(digit-'0')*scale))
		}
		rest = next
	}
	if total.Cmp(maxNanos) > 0 {
		return 0, overflow
	}
	return time.Duration(total.Int64()), nil
}

// FormatDuration writes d in the shortest exact form ParseDuration reads back: "5s", "250ms",
// "2m"; 90 seconds is written "90s" and 1.5 seconds "1500ms". Negative durations are written
// with a leading minus sign (which ParseDuration rejects).
func FormatDuration(d time.Duration) string {
	if d < 0 {
		if d == math.MinInt64 {
			return "-9223372036854775808ns"
		}
		return "-" + FormatDuration(-d)
	}
	nanos := int64(d)
	units := [...]struct {
		name string
		size int64
	}{
		{"h", 3_600_000_000_000},
		{"m", 60_000_000_000},
		{"s", 1_000_000_000},
		{"ms", 1_000_000},
		{"us", 1_000},
	}
	for _, u := range units {
		if nanos != 0 && nanos%u.size == 0 {
			return fmt.Sprintf("%d%s", nanos/u.size, u.name)
		}
	}
	if nanos == 0 {
		return "0s"
	}
	return fmt.Sprintf("%dns", nanos)
}
