package levee

import (
	"context"
	"fmt"
	"strings"
)

// Criticality is how much a request matters (SPEC §3). Ordered Sheddable < Standard <
// Critical; the zero value is Standard, the default.
type Criticality int8

// The three classes.
const (
	Sheddable Criticality = -1 // drop first under load (recommendations, prefetch)
	Standard  Criticality = 0  // the default
	Critical  Criticality = 1  // keep as long as anything runs (checkout, login)
)

// Criticalities lists every class, lowest first.
var Criticalities = [...]Criticality{Sheddable, Standard, Critical}

// String returns the wire and config spelling.
func (c Criticality) String() string {
	switch c {
	case Sheddable:
		return "sheddable"
	case Critical:
		return "critical"
	case Standard:
		return "standard"
	}
	return fmt.Sprintf("criticality(%d)", int8(c))
}

// Index returns the index into per-class arrays, lowest class first (0, 1, 2).
func (c Criticality) Index() int { return int(c) + 1 }

// ParseCriticality reads a header or config value; ASCII case and surrounding spaces are
// ignored.
func ParseCriticality(s string) (Criticality, error) {
	t := strings.TrimSpace(s)
	for _, c := range Criticalities {
		if strings.EqualFold(c.String(), t) {
			return c, nil
		}
	}
	return Standard, fmt.Errorf("unknown criticality `%s`: use critical, standard or sheddable", s)
}

// MarshalText writes the wire spelling.
func (c Criticality) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText reads the wire spelling (exactly, as in config files).
func (c *Criticality) UnmarshalText(b []byte) error {
	for _, v := range Criticalities {
		if v.String() == string(b) {
			*c = v
			return nil
		}
	}
	return fmt.Errorf("unknown variant `%s`, expected one of `sheddable`, `standard`, `critical`", b)
}

type criticalityKey struct{}

// WithCriticality returns a context carrying the request's criticality.
func WithCriticality(ctx context.Context, c Criticality) context.Context {
	return context.WithValue(ctx, criticalityKey{}, c)
}

// CriticalityFrom returns the criticality carried by ctx, Standard when none is.
func CriticalityFrom(ctx context.Context) Criticality {
	c, _ := LookupCriticality(ctx)
	return c
}

// LookupCriticality returns the criticality carried by ctx; ok is false (and c Standard) when
// ctx carries none.
func LookupCriticality(ctx context.Context) (c Criticality, ok bool) {
	c, ok = ctx.Value(criticalityKey{}).(Criticality)
	if !ok {
		return Standard, false
	}
	return c, true
}
