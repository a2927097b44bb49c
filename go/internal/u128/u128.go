// Package u128 is the unsigned 128-bit arithmetic levee-core does with u128, so that budgets
// and token buckets compute exactly the same integers in Go.
package u128

import "math/bits"

// U128 is an unsigned 128-bit integer.
type U128 struct{ Hi, Lo uint64 }

// Max is 2^128 − 1.
var Max = U128{^uint64(0), ^uint64(0)}

// From returns v as a U128.
func From(v uint64) U128 { return U128{Lo: v} }

// Mul64 returns a × b (exact: two 64-bit factors never overflow 128 bits).
func Mul64(a, b uint64) U128 {
	hi, lo := bits.Mul64(a, b)
	return U128{hi, lo}
}

// Cmp returns -1, 0 or 1.
func (a U128) Cmp(b U128) int {
	switch {
	case a.Hi < b.Hi || (a.Hi == b.Hi && a.Lo < b.Lo):
		return -1
	case a == b:
		return 0
	}
	return 1
}

// SatAdd returns a + b, saturating at Max.
func (a U128) SatAdd(b U128) U128 {
	lo, c := bits.Add64(a.Lo, b.Lo, 0)
	hi, c := bits.Add64(a.Hi, b.Hi, c)
	if c != 0 {
		return Max
	}
	return U128{hi, lo}
}

// SatMul64 returns a × b, saturating at Max.
func (a U128) SatMul64(b uint64) U128 {
	h1, l1 := bits.Mul64(a.Lo, b)
	h2, l2 := bits.Mul64(a.Hi, b)
	if h2 != 0 {
		return Max
	}
	hi, c := bits.Add64(h1, l2, 0)
	if c != 0 {
		return Max
	}
	return U128{hi, l1}
}

// Sub returns a − b, saturating at 0.
func (a U128) Sub(b U128) U128 {
	if a.Cmp(b) <= 0 {
		return U128{}
	}
	lo, borrow := bits.Sub64(a.Lo, b.Lo, 0)
	hi, _ := bits.Sub64(a.Hi, b.Hi, borrow)
	return U128{hi, lo}
}

// Min returns the smaller of a and b.
func (a U128) Min(b U128) U128 {
	if a.Cmp(b) <= 0 {
		return a
	}
	return b
}

// Div64 returns a / d (d > 0), saturating at 2^64 − 1 when the quotient does not fit.
func (a U128) Div64(d uint64) uint64 {
	if a.Hi >= d {
		return ^uint64(0)
	}
	q, _ := bits.Div64(a.Hi, a.Lo, d)
	return q
}

// DivCeil64 returns ceil(a / d) (d > 0), saturating at 2^64 − 1.
func (a U128) DivCeil64(d uint64) uint64 {
	if a.Hi >= d {
		return ^uint64(0)
	}
	q, r := bits.Div64(a.Hi, a.Lo, d)
	if r != 0 {
		if q == ^uint64(0) {
			return q
		}
		q++
	}
	return q
}

// Uint64 returns a as a uint64, saturating.
func (a U128) Uint64() uint64 {
	if a.Hi != 0 {
		return ^uint64(0)
	}
	return a.Lo
}
