package u128

import (
	"math/big"
	"testing"
)

func big128(u U128) *big.Int {
	b := new(big.Int).SetUint64(u.Hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(u.Lo))
}

func TestArithmeticAgreesWithBigInt(t *testing.T) {
	max := big128(Max)
	cases := []struct{ a, b uint64 }{{0, 0}, {1, ^uint64(0)}, {^uint64(0), ^uint64(0)}, {3_600_000_000_000, 1_000_000_000}, {7, 3}}
	for _, c := range cases {
		p := Mul64(c.a, c.b)
		want := new(big.Int).Mul(new(big.Int).SetUint64(c.a), new(big.Int).SetUint64(c.b))
		if big128(p).Cmp(want) != 0 {
			t.Fatalf("Mul64(%d, %d)", c.a, c.b)
		}
		sum := p.SatAdd(p)
		wantSum := new(big.Int).Add(want, want)
		if wantSum.Cmp(max) > 0 {
			wantSum = max
		}
		if big128(sum).Cmp(wantSum) != 0 {
			t.Fatalf("SatAdd(%d×%d)", c.a, c.b)
		}
		if c.b != 0 {
			q := new(big.Int).Quo(want, new(big.Int).SetUint64(c.b))
			if q.IsUint64() && p.Div64(c.b) != q.Uint64() {
				t.Fatalf("Div64")
			}
		}
	}
	if From(10).DivCeil64(3) != 4 || From(9).DivCeil64(3) != 3 || From(5).Sub(From(7)) != (U128{}) {
		t.Error("DivCeil64 / Sub")
	}
	if Max.SatMul64(2) != Max || From(3).SatMul64(5) != From(15) || Max.Uint64() != ^uint64(0) {
		t.Error("SatMul64 / Uint64")
	}
}
