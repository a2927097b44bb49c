package retry

import (
	"math"
	"time"

	"github.com/levee-dev/levee/go"
)

// ExponentialCap returns min(max, base × 2^n) in nanoseconds, saturating.
func ExponentialCap(c BackoffConfig, n uint32) uint64 {
	base, maxNanos := nanos(c.Base), nanos(c.Max)
	var grown uint64
	if n >= 64 || base > (math.MaxUint64>>n) {
		grown = math.MaxUint64
	} else {
		grown = base << n
	}
	return min(grown, maxNanos)
}

func nanos(d time.Duration) uint64 {
	if d < 0 {
		return 0
	}
	return uint64(d)
}

// Draw scales the draw u to 0..=span nanoseconds: x = floor(u × float64(span)) with one
// rounded multiplication; 0 when x is not above 0 (negative draws and NaN included), span
// when x >= float64(span), else x.
func Draw(u float64, span uint64) uint64 {
	spanF := float64(span)
	x := math.Floor(float64(u * spanF))
	switch {
	case math.IsNaN(x) || x <= 0:
		return 0
	case x >= spanF:
		return span
	}
	return min(uint64(x), span)
}

// Backoff returns the backoff before the retry that follows attempt attemptsMade (1 = after
// the first try), in whole nanoseconds so that Rust and Go agree:
//
//   - cap = min(max, base × 2^n) with n = attemptsMade − 1, saturating;
//   - none: cap; full: Draw(u, cap); equal: cap/2 + Draw(u, cap − cap/2);
//   - decorrelated: prev = previous or base, hi = prev × 3 (saturating),
//     min(max, base + Draw(u, hi − base)), or base when hi <= base.
//
// previous is the backoff computed for the previous retry (only decorrelated uses it; nil =
// none). It consumes one draw from rng unless the jitter is none.
func Backoff(c BackoffConfig, attemptsMade uint32, previous *time.Duration, rng levee.Random) time.Duration {
	n := uint32(0)
	if attemptsMade > 0 {
		n = attemptsMade - 1
	}
	var v uint64
	switch c.Jitter {
	case NoJitter:
		v = ExponentialCap(c, n)
	case Equal:
		capped := ExponentialCap(c, n)
		half := capped / 2
		v = half + Draw(rng.Float64(), capped-half)
	case Decorrelated:
		base, maxNanos := nanos(c.Base), nanos(c.Max)
		prev := base
		if previous != nil {
			prev = nanos(*previous)
		}
		hi := prev * 3
		if prev > math.MaxUint64/3 {
			hi = math.MaxUint64
		}
		u := rng.Float64()
		value := base
		if hi > base {
			d := Draw(u, hi-base)
			if value > math.MaxUint64-d {
				value = math.MaxUint64
			} else {
				value += d
			}
		}
		v = min(value, maxNanos)
	default: // Full
		v = Draw(rng.Float64(), ExponentialCap(c, n))
	}
	if v > math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(v)
}
