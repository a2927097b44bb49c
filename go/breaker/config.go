package breaker

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/levee-dev/levee/go"
)

// WindowKind says how outcomes are windowed for rate evaluation.
type WindowKind uint8

const (
	// WindowTime windows the last Size seconds, in 1 s buckets aligned to whole seconds of
	// the clock. The default.
	WindowTime WindowKind = iota
	// WindowCount windows the last Size counted calls.
	WindowCount
)

// String returns the config spelling.
func (k WindowKind) String() string {
	if k == WindowCount {
		return "count"
	}
	return "time"
}

// MarshalText writes the config spelling.
func (k WindowKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads "count" or "time".
func (k *WindowKind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "count":
		*k = WindowCount
	case "time":
		*k = WindowTime
	default:
		return fmt.Errorf("unknown variant `%s`, expected `count` or `time`", b)
	}
	return nil
}

// Mode is enforce (the default) or observe: evaluate and emit everything, never reject.
type Mode uint8

const (
	// Enforce rejects calls while open.
	Enforce Mode = iota
	// Observe is shadow mode: transitions and metrics as usual, but every call is permitted.
	Observe
)

// String returns the config spelling.
func (m Mode) String() string {
	if m == Observe {
		return "observe"
	}
	return "enforce"
}

// MarshalText writes the config spelling.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads "enforce" or "observe".
func (m *Mode) UnmarshalText(b []byte) error {
	switch string(b) {
	case "enforce":
		*m = Enforce
	case "observe":
		*m = Observe
	default:
		return fmt.Errorf("unknown variant `%s`, expected `enforce` or `observe`", b)
	}
	return nil
}

// WindowConfig is window: {kind, size}.
type WindowConfig struct {
	Kind WindowKind `json:"kind"` // count or time (default time)
	Size int        `json:"size"` // N calls or N seconds; 0 = 10
}

// OpenConfig is open: {wait, backoff_multiplier, max_wait, jitter}.
type OpenConfig struct {
	Wait              time.Duration `json:"wait"`               // time in open before probing; 0 = 5s
	BackoffMultiplier float64       `json:"backoff_multiplier"` // each re-open from half_open multiplies the wait; 0 = 2
	MaxWait           time.Duration `json:"max_wait"`           // cap of the un-jittered wait; 0 = 60s
	Jitter            *float64      `json:"jitter"`             // the wait is scaled by a factor uniform in [1-j, 1+j]; nil = 0.1
}

// HalfOpenConfig is half_open: {permitted_calls, max_wait}.
type HalfOpenConfig struct {
	PermittedCalls int           `json:"permitted_calls"` // probes allowed; 0 = 5
	MaxWait        time.Duration `json:"max_wait"`        // 0 = wait for every probe; otherwise re-open when it expires
}

// Config is the whole breaker block of an upstream or route (SPEC §2). The zero value of
// every field means the SPEC default, so Config{} is the default breaker.
type Config struct {
	Window                WindowConfig   `json:"window"`
	MinimumCalls          int            `json:"minimum_calls"`            // no rate is evaluated below this many counted calls; 0 = 20
	FailureRateThreshold  float64        `json:"failure_rate_threshold"`   // percent; trips when (failure+timeout)/counted >= threshold; 0 = 50
	SlowCallRateThreshold float64        `json:"slow_call_rate_threshold"` // percent; trips when slow/counted >= threshold; 0 = 100
	SlowCallDuration      time.Duration  `json:"slow_call_duration"`       // a counted call at least this long is slow; 0 = 5s
	ConsecutiveFailures   int            `json:"consecutive_failures"`     // trips after this many failures in a row; 0 = off
	Open                  OpenConfig     `json:"open"`
	HalfOpen              HalfOpenConfig `json:"half_open"`
	Mode                  Mode           `json:"mode"` // enforce or observe
}

// MaxWindowSize is the largest window a breaker accepts: a count window holds four bytes per
// call, a time window one bucket per second.
const MaxWindowSize = 100_000

// DefaultConfig returns the SPEC defaults, every field written out.
func DefaultConfig() Config {
	jitter := 0.1
	return Config{
		Window:                WindowConfig{Kind: WindowTime, Size: 10},
		MinimumCalls:          20,
		FailureRateThreshold:  50,
		SlowCallRateThreshold: 100,
		SlowCallDuration:      5 * time.Second,
		ConsecutiveFailures:   0,
		Open: OpenConfig{
			Wait:              5 * time.Second,
			BackoffMultiplier: 2,
			MaxWait:           60 * time.Second,
			Jitter:            &jitter,
		},
		HalfOpen: HalfOpenConfig{PermittedCalls: 5},
		Mode:     Enforce,
	}
}

// ParseConfig reads a breaker config written as JSON in the shape of the YAML config
// (snake_case keys, duration strings, unknown keys rejected). Keys left out take the SPEC
// defaults; values written out are taken as written, so an explicit 0 where 0 is impossible
// is an error, as in levee-core.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	if err := levee.UnmarshalConfig(data, &c); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// WithDefaults returns c with every zero field replaced by its SPEC default.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.Window.Size == 0 {
		c.Window.Size = d.Window.Size
	}
	if c.MinimumCalls == 0 {
		c.MinimumCalls = d.MinimumCalls
	}
	if c.FailureRateThreshold == 0 {
		c.FailureRateThreshold = d.FailureRateThreshold
	}
	if c.SlowCallRateThreshold == 0 {
		c.SlowCallRateThreshold = d.SlowCallRateThreshold
	}
	if c.SlowCallDuration == 0 {
		c.SlowCallDuration = d.SlowCallDuration
	}
	if c.Open.Wait == 0 {
		c.Open.Wait = d.Open.Wait
	}
	if c.Open.BackoffMultiplier == 0 {
		c.Open.BackoffMultiplier = d.Open.BackoffMultiplier
	}
	if c.Open.MaxWait == 0 {
		c.Open.MaxWait = d.Open.MaxWait
	}
	if c.Open.Jitter == nil {
		c.Open.Jitter = d.Open.Jitter
	}
	if c.HalfOpen.PermittedCalls == 0 {
		c.HalfOpen.PermittedCalls = d.HalfOpen.PermittedCalls
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

// Validate checks for impossible values; the message names the key and the fix, in the same
// words as levee-core. Zero fields are checked as written: call it on WithDefaults() for a
// config built in Go.
func (c Config) Validate() error {
	pct := func(name string, v float64) error {
		if v > 0 && v <= 100 {
			return nil
		}
		return fmt.Errorf("%s is %s: it is a percentage, use a value above 0 and at most 100", name, fmtFloat(v))
	}
	if err := pct("failure_rate_threshold", c.FailureRateThreshold); err != nil {
		return err
	}
	if err := pct("slow_call_rate_threshold", c.SlowCallRateThreshold); err != nil {
		return err
	}
	if c.Window.Size <= 0 || c.Window.Size > MaxWindowSize {
		unit := "seconds"
		if c.Window.Kind == WindowCount {
			unit = "calls"
		}
		return fmt.Errorf("window.size is %d: use 1 to %d (%s)", c.Window.Size, MaxWindowSize, unit)
	}
	if c.MinimumCalls <= 0 {
		return fmt.Errorf("minimum_calls is %d: use at least 1 (a rate over zero calls means nothing)", c.MinimumCalls)
	}
	if c.ConsecutiveFailures < 0 {
		return fmt.Errorf("consecutive_failures is %d: use 0 (off) or a positive count", c.ConsecutiveFailures)
	}
	if c.SlowCallDuration <= 0 {
		return fmt.Errorf("slow_call_duration is %s: every call would be slow; use e.g. 5s", levee.FormatDuration(c.SlowCallDuration))
	}
	if c.Open.Wait <= 0 {
		return fmt.Errorf("open.wait is %s: the breaker would probe at once; use e.g. 5s", levee.FormatDuration(c.Open.Wait))
	}
	if c.Open.MaxWait < c.Open.Wait {
		return fmt.Errorf("open.max_wait (%s) is shorter than open.wait (%s): raise max_wait or lower wait",
			levee.FormatDuration(c.Open.MaxWait), levee.FormatDuration(c.Open.Wait))
	}
	if !(c.Open.BackoffMultiplier >= 1 && c.Open.BackoffMultiplier <= 100) {
		return fmt.Errorf("open.backoff_multiplier is %s: use a value from 1 (no growth) to 100", fmtFloat(c.Open.BackoffMultiplier))
	}
	jitter := 0.1
	if c.Open.Jitter != nil {
		jitter = *c.Open.Jitter
	}
	if !(jitter >= 0 && jitter < 1) {
		return fmt.Errorf("open.jitter is %s: use a fraction from 0 (none) to below 1, e.g. 0.1", fmtFloat(jitter))
	}
	if c.HalfOpen.PermittedCalls <= 0 {
		return fmt.Errorf("half_open.permitted_calls is %d: the breaker could never close; use at least 1", c.HalfOpen.PermittedCalls)
	}
	if c.HalfOpen.MaxWait < 0 {
		return fmt.Errorf("half_open.max_wait is %s: use 0s (wait for every probe) or a positive duration", levee.FormatDuration(c.HalfOpen.MaxWait))
	}
	return nil
}

// effectiveMinimumCalls caps minimum_calls at the window size for a count window (as
// resilience4j does), so a count window with the default minimum_calls can still trip.
func (c Config) effectiveMinimumCalls() int {
	if c.Window.Kind == WindowCount {
		return min(c.MinimumCalls, c.Window.Size)
	}
	return c.MinimumCalls
}
