package bulkhead

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Algorithm is the published Netflix concurrency-limits algorithm that drives an adaptive
// limit.
type Algorithm uint8

const (
	// AIMD is additive increase, multiplicative decrease on drops (the default).
	AIMD Algorithm = iota
	// Gradient2 follows the ratio between the long-term average round trip and the latest.
	Gradient2
)

// String returns the config spelling.
func (a Algorithm) String() string {
	if a == Gradient2 {
		return "gradient2"
	}
	return "aimd"
}

// MarshalText writes the config spelling.
func (a Algorithm) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText reads "aimd" or "gradient2".
func (a *Algorithm) UnmarshalText(b []byte) error {
	switch string(b) {
	case "aimd":
		*a = AIMD
	case "gradient2":
		*a = Gradient2
	default:
		return fmt.Errorf("unknown variant `%s`, expected `aimd` or `gradient2`", b)
	}
	return nil
}

// LimitConfig is a bulkhead's limit: {algorithm, initial, min, max, ...} (SPEC §3). The zero
// value of every field means its default. Keys that belong to the other algorithm are
// accepted and ignored (backoff_ratio is AIMD's; smoothing, tolerance, long_window and
// queue_size are Gradient2's), but they are validated either way.
type LimitConfig struct {
	Algorithm    Algorithm `json:"algorithm"`     // aimd (default) or gradient2
	Initial      int       `json:"initial"`       // the limit before any sample; 0 = 20
	Min          int       `json:"min"`           // the limit never goes below this; 0 = 1
	Max          int       `json:"max"`           // the limit never goes above this; 0 = 1000
	BackoffRatio float64   `json:"backoff_ratio"` // AIMD: on a drop, limit = floor(limit × ratio); 0 = 0.9
	Smoothing    float64   `json:"smoothing"`     // Gradient2: weight of the new estimate; 0 = 0.2
	Tolerance    float64   `json:"tolerance"`     // Gradient2: how much slower than average a call may be; 0 = 1.5
	LongWindow   int       `json:"long_window"`   // Gradient2: samples in the long-term average; 0 = 600
	QueueSize    int       `json:"queue_size"`    // Gradient2: growth per sample while latency holds; 0 = 4
}

// DefaultLimitConfig returns the defaults, every field written out.
func DefaultLimitConfig() LimitConfig {
	return LimitConfig{Algorithm: AIMD, Initial: 20, Min: 1, Max: 1000, BackoffRatio: 0.9,
		Smoothing: 0.2, Tolerance: 1.5, LongWindow: 600, QueueSize: 4}
}

// SetConfigDefaults fills the defaults before a config is decoded over it (see
// levee.UnmarshalConfig).
func (c *LimitConfig) SetConfigDefaults() { *c = DefaultLimitConfig() }

// WithDefaults returns c with every zero field replaced by its default.
func (c LimitConfig) WithDefaults() LimitConfig {
	d := DefaultLimitConfig()
	if c.Initial == 0 {
		c.Initial = d.Initial
	}
	if c.Min == 0 {
		c.Min = d.Min
	}
	if c.Max == 0 {
		c.Max = d.Max
	}
	if c.BackoffRatio == 0 {
		c.BackoffRatio = d.BackoffRatio
	}
	if c.Smoothing == 0 {
		c.Smoothing = d.Smoothing
	}
	if c.Tolerance == 0 {
		c.Tolerance = d.Tolerance
	}
	if c.LongWindow == 0 {
		c.LongWindow = d.LongWindow
	}
	if c.QueueSize == 0 {
		c.QueueSize = d.QueueSize
	}
	return c
}

// fmtFloat writes a float as Rust's Display does (shortest exact form, no exponent).
func fmtFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

const maxU32 = math.MaxUint32

// Validate checks every value as written; the message names the key, what is wrong and how
// to fix it, in the same words as levee-core.
func (c LimitConfig) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"initial", c.Initial}, {"min", c.Min}, {"max", c.Max}, {"long_window", c.LongWindow}, {"queue_size", c.QueueSize}} {
		if f.v < 0 || f.v > maxU32 {
			return fmt.Errorf("%s is %d: use a whole number from 0 to %d", f.name, f.v, maxU32)
		}
	}
	if c.Min == 0 {
		return fmt.Errorf("min is 0: the limit must always let at least one call through; set min to 1 or more")
	}
	if c.Max < c.Min {
		return fmt.Errorf("max (%d) is below min (%d): set max to at least %d", c.Max, c.Min, c.Min)
	}
	if c.Initial < c.Min || c.Initial > c.Max {
		return fmt.Errorf("initial (%d) is outside min..max (%d..%d): set initial between them", c.Initial, c.Min, c.Max)
	}
	if !(c.BackoffRatio > 0 && c.BackoffRatio < 1) {
		return fmt.Errorf("backoff_ratio is %s: it must be above 0 and below 1 (0.9 cuts the limit by 10%% on each failure or timeout)", fmtFloat(c.BackoffRatio))
	}
	if !(c.Smoothing > 0 && c.Smoothing <= 1) {
		return fmt.Errorf("smoothing is %s: it must be above 0 and at most 1 (default 0.2)", fmtFloat(c.Smoothing))
	}
	if !(c.Tolerance >= 1 && !math.IsInf(c.Tolerance, 0)) {
		return fmt.Errorf("tolerance is %s: it must be at least 1 (1.5 lets calls get 50%% slower than usual before the limit shrinks)", fmtFloat(c.Tolerance))
	}
	if c.LongWindow == 0 {
		return fmt.Errorf("long_window is 0: the long-term average needs at least 1 sample (default 600)")
	}
	if c.QueueSize == 0 {
		return fmt.Errorf("queue_size is 0: a gradient2 limit could then never grow; set it to 1 or more (default 4)")
	}
	return nil
}

// AdaptiveLimit is a concurrency limit that adapts to samples of finished calls (SPEC §3), a
// port of levee-core's adaptive module. It learns from one sample per finished call: the
// call's round trip (time holding the bulkhead slot), the in-flight count when it was
// admitted (itself included), and whether it was dropped (failure or timeout). The limit is
// always within [min, max] and starts at initial.
//
//   - aimd: on a drop, limit = floor(limit × backoff_ratio); on any other sample whose
//     in-flight count had reached the limit, limit + 1; otherwise unchanged; then clamped.
//   - gradient2: a float64 estimate moves by clamp(tolerance × long_rtt / rtt, 0.5, 1.0)
//     against a long-term average round trip, plus queue_size of headroom, smoothed; the
//     limit is floor(estimate). Drops are ignored. Every step is one rounded float64 operation
//     in levee-core's order, so the estimate is the same to the bit.
//
// It is plain data: no clock, no lock. The bulkhead keeps it behind its own mutex.
type AdaptiveLimit struct {
	algorithm Algorithm
	// AIMD
	limit        uint32
	min, max     uint32
	backoffRatio float64
	// Gradient2
	estimate   float64
	fmin, fmax float64
	smoothing  float64
	tolerance  float64
	queueSize  float64
	long       longAverage
}

// warmupSamples are averaged plainly before the exponential average takes over.
const warmupSamples = 10

// longAverage is the long-term round-trip average in nanoseconds (Netflix ExpAvgMeasurement
// with a warm-up of 10).
type longAverage struct {
	value  float64
	sum    float64
	count  uint32
	factor float64
}

func (l *longAverage) add(sample float64) float64 {
	if l.count < warmupSamples {
		l.count++
		l.sum += sample
		l.value = l.sum / float64(l.count)
	} else {
		l.value = float64(l.value*(1.0-l.factor)) + float64(sample*l.factor)
	}
	return l.value
}

// fmax and fmin behave as Rust's f64::max and f64::min: a NaN operand is ignored.
func fmax(a, b float64) float64 {
	if math.IsNaN(a) {
		return b
	}
	if math.IsNaN(b) || a >= b {
		return a
	}
	return b
}

func fmin(a, b float64) float64 {
	if math.IsNaN(a) {
		return b
	}
	if math.IsNaN(b) || a <= b {
		return a
	}
	return b
}

// floatToU32 truncates and saturates as Rust's `as u32` does (NaN is 0).
func floatToU32(f float64) uint32 {
	switch {
	case !(f > 0):
		return 0
	case f >= maxU32:
		return maxU32
	}
	return uint32(f)
}

func clampU32(v int) uint32 {
	switch {
	case v < 0:
		return 0
	case v > maxU32:
		return maxU32
	}
	return uint32(v)
}

// NewAdaptiveLimit returns a limit at config.Initial (zero fields take the defaults). The
// config should pass Validate; an invalid one never panics, but its behaviour is only
// specified for valid values.
func NewAdaptiveLimit(config LimitConfig) *AdaptiveLimit {
	config = config.WithDefaults()
	a := &AdaptiveLimit{algorithm: config.Algorithm}
	initial, lo, hi := clampU32(config.Initial), clampU32(config.Min), clampU32(config.Max)
	switch config.Algorithm {
	case Gradient2:
		a.fmin, a.fmax = float64(lo), float64(hi)
		a.estimate = fmax(a.fmin, fmin(a.fmax, float64(initial)))
		a.smoothing = config.Smoothing
		a.tolerance = config.Tolerance
		a.queueSize = float64(clampU32(config.QueueSize))
		a.long.factor = 2.0 / (float64(clampU32(config.LongWindow)) + 1.0)
	default:
		a.min, a.max = lo, hi
		a.backoffRatio = config.BackoffRatio
		a.limit = a.clamp(initial)
	}
	return a
}

// Algorithm returns the algorithm in use.
func (a *AdaptiveLimit) Algorithm() Algorithm { return a.algorithm }

// Limit returns the current limit: at least min, at most max.
func (a *AdaptiveLimit) Limit() uint32 {
	if a.algorithm == Gradient2 {
		return floatToU32(math.Floor(a.estimate))
	}
	return a.limit
}

// Estimate returns the unrounded estimate behind the limit (Gradient2); for AIMD the limit.
func (a *AdaptiveLimit) Estimate() float64 {
	if a.algorithm == Gradient2 {
		return a.estimate
	}
	return float64(a.limit)
}

// LongRTTNanos returns Gradient2's long-term average round trip in nanoseconds (0 before the
// first sample); ok is false for AIMD.
func (a *AdaptiveLimit) LongRTTNanos() (nanos float64, ok bool) {
	if a.algorithm == Gradient2 {
		return a.long.value, true
	}
	return 0, false
}

// OnSample learns from one finished call and returns the new limit. rtt is the time the call
// held its slot, inFlight the bulkhead's in-flight count right after the call was admitted
// (the call included), dropped whether it ended failure or timeout.
func (a *AdaptiveLimit) OnSample(rtt time.Duration, inFlight uint32, dropped bool) uint32 {
	if a.algorithm == Gradient2 {
		return a.gradient2(rtt, inFlight)
	}
	var next uint32
	switch {
	case dropped:
		next = floatToU32(math.Floor(float64(float64(a.limit) * a.backoffRatio)))
	case inFlight >= a.limit:
		next = a.limit
		if next < maxU32 {
			next++
		}
	default:
		next = a.limit
	}
	a.limit = a.clamp(next)
	return a.limit
}

// clamp is min(max, max(min, value)): never a panic when validation was skipped.
func (a *AdaptiveLimit) clamp(v uint32) uint32 {
	return min(max(v, a.min), a.max)
}

func (a *AdaptiveLimit) gradient2(rtt time.Duration, inFlight uint32) uint32 {
	nanos := uint64(max(rtt, 0))
	short := float64(max(nanos, 1))
	long := a.long.add(short)
	if long/short > 2.0 {
		a.long.value *= 0.95
	}
	if float64(inFlight) < a.estimate/2.0 {
		return a.Limit()
	}
	gradient := fmax(0.5, fmin(1.0, float64(a.tolerance*long)/short))
	next := float64(a.estimate*gradient) + a.queueSize
	next = float64(a.estimate*(1.0-a.smoothing)) + float64(next*a.smoothing)
	next = fmax(a.fmin, fmin(a.fmax, next))
	a.estimate = next
	return a.Limit()
}
