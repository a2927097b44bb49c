package retry

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/levee-dev/levee/go"
)

// Jitter is how the backoff is spread (SPEC §4 backoff.jitter). The zero value is Full, the
// default.
type Jitter uint8

const (
	// Full is uniform in [0, min(max, base × 2^n)] (the default).
	Full Jitter = iota
	// NoJitter is exactly min(max, base × 2^n) (config spelling "none").
	NoJitter
	// Equal is half fixed, half uniform.
	Equal
	// Decorrelated is min(max, uniform(base, previous × 3)).
	Decorrelated
)

// String returns the config spelling.
func (j Jitter) String() string {
	switch j {
	case NoJitter:
		return "none"
	case Equal:
		return "equal"
	case Decorrelated:
		return "decorrelated"
	}
	return "full"
}

// Draws reports whether computing a backoff consumes one random draw.
func (j Jitter) Draws() bool { return j != NoJitter }

// MarshalText writes the config spelling.
func (j Jitter) MarshalText() ([]byte, error) { return []byte(j.String()), nil }

// UnmarshalText reads none, full, equal or decorrelated.
func (j *Jitter) UnmarshalText(b []byte) error {
	switch string(b) {
	case "none":
		*j = NoJitter
	case "full":
		*j = Full
	case "equal":
		*j = Equal
	case "decorrelated":
		*j = Decorrelated
	default:
		return fmt.Errorf("unknown variant `%s`, expected one of `none`, `full`, `equal`, `decorrelated`", b)
	}
	return nil
}

// BackoffConfig is backoff: {base, max, jitter}.
type BackoffConfig struct {
	Base   time.Duration `json:"base"`   // the first retry's backoff before jitter; 0 = 25ms
	Max    time.Duration `json:"max"`    // the largest backoff; 0 = 1s
	Jitter Jitter        `json:"jitter"` // how the backoff is spread; zero value = full
}

// Validate checks the values as written, in levee-core's words.
func (c BackoffConfig) Validate() error {
	if c.Base <= 0 {
		return fmt.Errorf("backoff.base is %s: it must be more than zero (the default is 25ms); use jitter: full for retries that may start at once", levee.FormatDuration(c.Base))
	}
	if c.Base > c.Max {
		return fmt.Errorf("backoff.base (%s) is longer than backoff.max (%s): raise backoff.max or lower backoff.base",
			levee.FormatDuration(c.Base), levee.FormatDuration(c.Max))
	}
	return nil
}

// ConditionKind is the kind of a retry_on item.
type ConditionKind uint8

// The kinds of retry_on items.
const (
	OnConnectFailure ConditionKind = iota // connect_failure
	OnReset                               // reset
	OnRefusedStream                       // refused_stream
	OnTimeout                             // timeout: the per-try timeout (or the deadline) expired
	OnStatuses                            // a status or inclusive range: 503, 500-504, 5xx
)

// Condition is one retry_on item.
type Condition struct {
	Kind   ConditionKind
	Lo, Hi int // for OnStatuses
}

// ParseCondition parses one item: connect_failure, reset, refused_stream, timeout, 5xx, 4xx,
// a status (503) or a range (500-504).
func ParseCondition(item string) (Condition, error) {
	switch t := strings.TrimSpace(item); t {
	case "connect_failure":
		return Condition{Kind: OnConnectFailure}, nil
	case "reset":
		return Condition{Kind: OnReset}, nil
	case "refused_stream":
		return Condition{Kind: OnRefusedStream}, nil
	case "timeout":
		return Condition{Kind: OnTimeout}, nil
	case "cancelled":
		return Condition{}, fmt.Errorf("retry_on cannot contain `cancelled`: the caller has gone away, so nobody would receive the retry's answer")
	default:
		lo, hi, err := levee.ParseStatusItem(t)
		if err != nil {
			return Condition{}, fmt.Errorf("retry_on: %v; the other items are connect_failure, reset, refused_stream, timeout and 5xx", err)
		}
		return Condition{Kind: OnStatuses, Lo: lo, Hi: hi}, nil
	}
}

// Matches reports whether result meets this condition.
func (c Condition) Matches(r levee.AttemptResult) bool {
	switch c.Kind {
	case OnConnectFailure:
		return r.Kind == levee.AttemptConnectFailure
	case OnReset:
		return r.Kind == levee.AttemptReset
	case OnRefusedStream:
		return r.Kind == levee.AttemptRefusedStream
	case OnTimeout:
		return r.Kind == levee.AttemptTimeout
	}
	return r.Kind == levee.AttemptStatus && r.Status >= c.Lo && r.Status <= c.Hi
}

// String returns the config spelling.
func (c Condition) String() string {
	switch c.Kind {
	case OnConnectFailure:
		return "connect_failure"
	case OnReset:
		return "reset"
	case OnRefusedStream:
		return "refused_stream"
	case OnTimeout:
		return "timeout"
	}
	if c.Lo == c.Hi {
		return strconv.Itoa(c.Lo)
	}
	return fmt.Sprintf("%d-%d", c.Lo, c.Hi)
}

// RetryOn is the retry_on list. nil means the SPEC default [connect_failure, reset,
// refused_stream, 502, 503, 504]; an empty non-nil list retries nothing.
type RetryOn []Condition

// DefaultRetryOn returns the SPEC default list.
func DefaultRetryOn() RetryOn {
	return RetryOn{
		{Kind: OnConnectFailure}, {Kind: OnReset}, {Kind: OnRefusedStream},
		{Kind: OnStatuses, Lo: 502, Hi: 502}, {Kind: OnStatuses, Lo: 503, Hi: 503}, {Kind: OnStatuses, Lo: 504, Hi: 504},
	}
}

// ParseRetryOn builds the list from items such as "connect_failure", "5xx", "429".
func ParseRetryOn(items ...string) (RetryOn, error) {
	out := RetryOn{}
	for _, item := range items {
		c, err := ParseCondition(item)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Matches reports whether result is retried. cancelled never is.
func (r RetryOn) Matches(result levee.AttemptResult) bool {
	for _, c := range r {
		if c.Matches(result) {
			return true
		}
	}
	return false
}

// UnmarshalJSON reads a list whose items are numbers or strings.
func (r *RetryOn) UnmarshalJSON(b []byte) error {
	texts, err := levee.StatusItems(b, `"reset", 503 or "500-504"`)
	if err != nil {
		return err
	}
	parsed, err := ParseRetryOn(texts...)
	if err != nil {
		return err
	}
	*r = parsed
	return nil
}

// MarshalJSON writes the list as strings.
func (r RetryOn) MarshalJSON() ([]byte, error) {
	items := make([]string, len(r))
	for i, c := range r {
		items[i] = c.String()
	}
	return json.Marshal(items)
}

// BudgetConfig is budget: {ratio, min_per_second, ttl} (SPEC §4).
type BudgetConfig struct {
	Ratio        *float64      `json:"ratio"`          // retries may add this fraction on top of requests; nil = 0.2
	MinPerSecond *int          `json:"min_per_second"` // retries always allowed per second; nil = 10
	TTL          time.Duration `json:"ttl"`            // how long a request's deposit lasts, 1s to 60s; 0 = 10s
}

// The bounds of a budget config.
const (
	MinTTL   = time.Second
	MaxTTL   = 60 * time.Second
	MaxRatio = 1000.0
)

// DefaultBudgetConfig returns the SPEC defaults, every field written out.
func DefaultBudgetConfig() BudgetConfig {
	return BudgetConfig{Ratio: levee.Ptr(0.2), MinPerSecond: levee.Ptr(10), TTL: 10 * time.Second}
}

// WithDefaults returns c with every unset field replaced by its SPEC default.
func (c BudgetConfig) WithDefaults() BudgetConfig {
	d := DefaultBudgetConfig()
	if c.Ratio == nil {
		c.Ratio = d.Ratio
	}
	if c.MinPerSecond == nil {
		c.MinPerSecond = d.MinPerSecond
	}
	if c.TTL == 0 {
		c.TTL = d.TTL
	}
	return c
}

func (c BudgetConfig) ratio() float64 {
	if c.Ratio == nil {
		return 0.2
	}
	return *c.Ratio
}

func (c BudgetConfig) minPerSecond() int {
	if c.MinPerSecond == nil {
		return 10
	}
	return *c.MinPerSecond
}

// ParseBudgetConfig reads a budget config written as JSON (the retry_budget vectors' shape).
func ParseBudgetConfig(data []byte) (BudgetConfig, error) {
	c := DefaultBudgetConfig()
	if err := levee.UnmarshalConfig(data, &c); err != nil {
		return BudgetConfig{}, err
	}
	if err := c.Validate(); err != nil {
		return BudgetConfig{}, err
	}
	return c, nil
}

// Validate checks the values; the message says what is wrong, where, and how to fix it.
func (c BudgetConfig) Validate() error {
	r := c.ratio()
	if math.IsNaN(r) || math.IsInf(r, 0) || r < 0 || r > MaxRatio {
		return fmt.Errorf("budget.ratio is %s: it must be between 0 and 1000 (0.2 lets retries add 20%% on top of requests)", fmtFloat(r))
	}
	if m := c.minPerSecond(); m < 0 || m > math.MaxUint32 {
		return fmt.Errorf("budget.min_per_second is %d: use a whole number from 0 to %d", m, uint32(math.MaxUint32))
	}
	if c.TTL < MinTTL || c.TTL > MaxTTL {
		return fmt.Errorf("budget.ttl is %s: it must be between 1s and 60s (the default is 10s)", levee.FormatDuration(c.TTL))
	}
	if c.ratioPPM() == 0 && c.minPerSecond() == 0 {
		return fmt.Errorf("budget allows no retries at all (ratio 0 and min_per_second 0): raise budget.ratio or budget.min_per_second, or set max_attempts: 1 to turn retries off")
	}
	return nil
}

// ratioPPM is round(ratio × 1_000_000), half away from zero.
func (c BudgetConfig) ratioPPM() uint64 {
	r := c.ratio()
	if math.IsNaN(r) || math.IsInf(r, 0) || r <= 0 {
		return 0
	}
	v := math.Round(float64(r * 1_000_000.0))
	if v >= 18446744073709551615.0 {
		return math.MaxUint64
	}
	return uint64(v)
}

// Config is retry: on a route (SPEC §4). The zero value of every field means the SPEC
// default, so Config{} is the default retry policy.
type Config struct {
	MaxAttempts        int           `json:"max_attempts"`             // attempts in all, the first included; 0 = 2; 1 turns retries off
	Backoff            BackoffConfig `json:"backoff"`                  // the wait between attempts
	RetryOn            RetryOn       `json:"retry_on"`                 // which results are retried; nil = the SPEC default
	PerTryTimeout      time.Duration `json:"per_try_timeout,nullable"` // the timeout of each attempt; 0 = none
	RetryNonIdempotent bool          `json:"retry_non_idempotent"`     // also retry POST/PATCH without Idempotency-Key
	Budget             BudgetConfig  `json:"budget"`                   // the retry budget of the endpoint key
}

// noPerTryTimeout marks per_try_timeout as absent while a JSON config is decoded, so that an
// explicit "0s" can be told apart and rejected as levee-core does.
const noPerTryTimeout = time.Duration(-1)

// DefaultConfig returns the SPEC defaults, every field written out.
func DefaultConfig() Config {
	return Config{
		MaxAttempts: 2,
		Backoff:     BackoffConfig{Base: 25 * time.Millisecond, Max: time.Second, Jitter: Full},
		RetryOn:     DefaultRetryOn(),
		Budget:      DefaultBudgetConfig(),
	}
}

// ParseConfig reads a retry config written as JSON in the shape of the YAML config
// (snake_case keys, duration strings, unknown keys rejected). Keys left out take the SPEC
// defaults; values written out are taken as written, so an explicit 0 where 0 is impossible
// is an error, as in levee-core.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	c.PerTryTimeout = noPerTryTimeout
	if err := levee.UnmarshalConfig(data, &c); err != nil {
		return Config{}, err
	}
	switch c.PerTryTimeout {
	case noPerTryTimeout:
		c.PerTryTimeout = 0
	case 0:
		return Config{}, errZeroPerTry
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

var errZeroPerTry = fmt.Errorf("per_try_timeout is 0s: give each attempt some time, such as 250ms, or leave per_try_timeout out for no per-try limit")

// WithDefaults returns c with every zero field replaced by its SPEC default.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.MaxAttempts == 0 {
		c.MaxAttempts = d.MaxAttempts
	}
	if c.Backoff.Base == 0 {
		c.Backoff.Base = d.Backoff.Base
	}
	if c.Backoff.Max == 0 {
		c.Backoff.Max = d.Backoff.Max
	}
	if c.RetryOn == nil {
		c.RetryOn = d.RetryOn
	}
	c.Budget = c.Budget.WithDefaults()
	return c
}

// Validate checks the values as written; the message says what is wrong, where, and how to
// fix it, in levee-core's words.
func (c Config) Validate() error {
	if c.MaxAttempts <= 0 {
		return fmt.Errorf("max_attempts is %d: it counts the first try too, so use 1 to turn retries off or 2 or more to retry", c.MaxAttempts)
	}
	if c.MaxAttempts > math.MaxUint32 {
		return fmt.Errorf("max_attempts is %d: use at most %d", c.MaxAttempts, uint32(math.MaxUint32))
	}
	if err := c.Backoff.Validate(); err != nil {
		return err
	}
	if c.PerTryTimeout < 0 {
		return fmt.Errorf("per_try_timeout is %s: give each attempt some time, such as 250ms, or leave per_try_timeout out for no per-try limit", levee.FormatDuration(c.PerTryTimeout))
	}
	return c.Budget.Validate()
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
