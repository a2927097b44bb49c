// Package ratelimit is Levee's rate limit (SPEC §6), a port of levee-core's rate_limit module
// proved identical by the conformance vectors: a token bucket per route, optionally one per
// value of a request header: rate_limit: {rate: 100/s, burst: 50, key: header:x-client-id}.
// A request over the limit is rejected with rate_limited (429) and told when a token will be
// there.
//
// The bucket is exact integer arithmetic (128-bit where needed):
//
//   - rate N/<unit> with period_ns = 1 s, 1 min or 1 h. One token is period_ns units; time
//     adds N units per nanosecond; a request costs one token.
//   - capacity = burst × period_ns; a bucket starts full.
//   - On each request at now: if now is after the last refill,
//     tokens = min(capacity, tokens + elapsed_ns × N) and the refill time becomes now. Then if
//     tokens >= period_ns the request is allowed and tokens -= period_ns; otherwise it is
//     limited with retry_after = ceil((period_ns − tokens) / N) ns and the bucket is unchanged.
//
// Limiter keeps one bucket per key (the header's value; a missing header, or a route without
// key, uses the shared key ""). It tracks at most max_keys keys and evicts the least recently
// used to make room; an evicted key that returns starts full. Key values longer than 256 bytes
// are cut to their first 256 bytes.
package ratelimit

import (
	"container/list"
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/internal/u128"
)

// Limits of a config.
const (
	MaxRateCount   = 1_000_000_000 // the largest count a rate may have
	MaxBurst       = 1_000_000_000 // the largest burst
	DefaultMaxKeys = 10_000        // the default max_keys
	MaxKeyBytes    = 256           // key values are cut to this many bytes
)

// Per is the period of a Rate.
type Per uint8

// The periods.
const (
	PerSecond Per = iota + 1 // /s
	PerMinute                // /m
	PerHour                  // /h
)

// Duration returns the period's length.
func (p Per) Duration() time.Duration {
	switch p {
	case PerMinute:
		return time.Minute
	case PerHour:
		return time.Hour
	}
	return time.Second
}

// String returns the unit as written: s, m or h.
func (p Per) String() string {
	switch p {
	case PerMinute:
		return "m"
	case PerHour:
		return "h"
	}
	return "s"
}

// Rate is a rate such as 100/s, 600/m or 5000/h. The zero value is no rate (invalid).
type Rate struct {
	Count uint64
	Per   Per
}

// NewRate returns count requests per per; count must be in 1..=1_000_000_000.
func NewRate(count uint64, per Per) (Rate, error) {
	if count == 0 {
		return Rate{}, fmt.Errorf("rate `0/%s` allows no requests: use a positive count such as `100/s`, or remove rate_limit to turn it off", per)
	}
	if count > MaxRateCount {
		return Rate{}, fmt.Errorf("rate `%d/%s` is above the largest supported count, %d", count, per, MaxRateCount)
	}
	return Rate{Count: count, Per: per}, nil
}

// PerSecondRate is sugar for a rate of n per second (n must be valid).
func PerSecondRate(n uint64) Rate { return Rate{Count: n, Per: PerSecond} }

// ParseRate reads "100/s", "600/m" or "5000/h".
func ParseRate(input string) (Rate, error) {
	text := strings.TrimSpace(input)
	malformed := fmt.Errorf("rate `%s` is not `<count>/<unit>`: write e.g. `100/s`, `600/m` or `5000/h`", text)
	if text != "" && allDigits(text) {
		return Rate{}, fmt.Errorf("rate `%s` has no unit: write `%s/s`, `%s/m` or `%s/h`", text, text, text, text)
	}
	count, unit, ok := strings.Cut(text, "/")
	if !ok {
		return Rate{}, malformed
	}
	var per Per
	switch unit {
	case "s":
		per = PerSecond
	case "m":
		per = PerMinute
	case "h":
		per = PerHour
	default:
		return Rate{}, malformed
	}
	if count == "" || !allDigits(count) {
		return Rate{}, malformed
	}
	n, err := strconv.ParseUint(count, 10, 64)
	if err != nil {
		n = math.MaxUint64
	}
	return NewRate(n, per)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String writes the rate as "100/s".
func (r Rate) String() string { return fmt.Sprintf("%d/%s", r.Count, r.Per) }

// MarshalText writes the rate.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalJSON reads a rate string (a bare number gets the "has no unit" message).
func (r *Rate) UnmarshalJSON(b []byte) error {
	text, err := textOrNumber(b)
	if err != nil {
		return err
	}
	v, err := ParseRate(text)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

func textOrNumber(b []byte) (string, error) {
	s := strings.TrimSpace(string(b))
	if strings.HasPrefix(s, `"`) {
		v, err := strconv.Unquote(s)
		if err != nil {
			return "", fmt.Errorf("invalid string %s", s)
		}
		return v, nil
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		if _, err := strconv.ParseInt(s, 10, 64); err == nil {
			return s, nil
		}
		f, _ := strconv.ParseFloat(s, 64)
		return strconv.FormatFloat(f, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("invalid type: %s, expected a string", s)
}

// periodNanos returns the period in nanoseconds.
func (r Rate) periodNanos() uint64 { return uint64(r.Per.Duration()) }

// KeyHeader is the key source header:<name>: the name of the request header whose value keys
// the bucket, in lower case. Empty means one bucket for the route.
type KeyHeader string

func isTchar(b byte) bool {
	return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}

// ParseKey reads a key source: header:<name>.
func ParseKey(input string) (KeyHeader, error) {
	text := strings.TrimSpace(input)
	name, ok := strings.CutPrefix(text, "header:")
	if !ok {
		return "", fmt.Errorf("rate limit key `%s` is not supported: write `header:<name>`, such as `header:x-client-id`", text)
	}
	name = strings.TrimSpace(name)
	valid := name != ""
	for i := 0; i < len(name); i++ {
		valid = valid && isTchar(name[i])
	}
	if !valid {
		return "", fmt.Errorf("rate limit key `%s` does not name a valid header: write `header:<name>`, such as `header:x-client-id`", text)
	}
	return KeyHeader(strings.ToLower(name)), nil
}

// String writes the key source as header:<name>.
func (k KeyHeader) String() string { return "header:" + string(k) }

// UnmarshalJSON reads a key source string.
func (k *KeyHeader) UnmarshalJSON(b []byte) error {
	text, err := textOrNumber(b)
	if err != nil {
		return err
	}
	v, err := ParseKey(text)
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// Config is rate_limit: on a route (SPEC §6). Rate is required; the zero value of every other
// field means its default.
type Config struct {
	Rate    Rate      `json:"rate"`           // sustained rate: 100/s, 600/m, 5000/h
	Burst   int       `json:"burst,nullable"` // requests allowed at once after a quiet spell; 0 = the rate's count
	Key     KeyHeader `json:"key,nullable"`   // one bucket per value of this header; "" = one bucket for the route
	MaxKeys int       `json:"max_keys"`       // most keys tracked at once (least recently used evicted); 0 = 10000
}

// unsetBurst marks burst as absent while a JSON config is decoded, so that an explicit 0 can
// be told apart and rejected as levee-core does.
const unsetBurst = -1

// ParseConfig reads a rate limit config written as JSON in the shape of the YAML config
// (unknown keys rejected; rate required). Values written out are taken as written, so an
// explicit 0 burst or max_keys is an error, as in levee-core.
func ParseConfig(data []byte) (Config, error) {
	c := Config{Burst: unsetBurst, MaxKeys: DefaultMaxKeys}
	if err := levee.UnmarshalConfig(data, &c); err != nil {
		return Config{}, err
	}
	if c.Rate == (Rate{}) {
		return Config{}, fmt.Errorf("missing field `rate`")
	}
	switch c.Burst {
	case unsetBurst:
		c.Burst = 0
	case 0:
		return Config{}, errZeroBurst
	}
	if c.Burst > MaxBurst {
		return Config{}, fmt.Errorf("rate_limit.burst is %d: the largest supported burst is %d", c.Burst, MaxBurst)
	}
	if c.MaxKeys == 0 {
		return Config{}, fmt.Errorf("rate_limit.max_keys is 0: it must be at least 1 (the default is 10000)")
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

var errZeroBurst = fmt.Errorf("rate_limit.burst is 0: it must be at least 1 (it defaults to the rate's count)")

// EffectiveBurst returns burst, or the rate's count when it is 0.
func (c Config) EffectiveBurst() uint64 {
	if c.Burst <= 0 {
		return c.Rate.Count
	}
	return uint64(c.Burst)
}

// Validate checks the values; the message says what is wrong, where, and how to fix it. Zero
// Burst and MaxKeys mean their defaults here.
func (c Config) Validate() error {
	if c.Rate == (Rate{}) {
		return fmt.Errorf("rate_limit.rate is missing: write e.g. `100/s`, `600/m` or `5000/h`")
	}
	if _, err := NewRate(c.Rate.Count, c.Rate.Per); err != nil {
		return err
	}
	if c.Burst < 0 {
		return fmt.Errorf("rate_limit.burst is %d: it must be at least 1 (it defaults to the rate's count)", c.Burst)
	}
	if c.Burst > MaxBurst {
		return fmt.Errorf("rate_limit.burst is %d: the largest supported burst is %d", c.Burst, MaxBurst)
	}
	if c.MaxKeys < 0 {
		return fmt.Errorf("rate_limit.max_keys is %d: it must be at least 1 (the default is 10000)", c.MaxKeys)
	}
	return nil
}

// Decision is the answer to one request.
type Decision struct {
	Allowed    bool
	RetryAfter time.Duration // when limited: when the next token will be there
}

// Bucket is one token bucket. It is not safe for concurrent use by itself.
type Bucket struct {
	count      uint64
	cost       uint64
	capacity   u128.U128
	tokens     u128.U128
	refilledAt levee.Timestamp
}

// NewBucket returns a full bucket at now.
func NewBucket(rate Rate, burst uint64, now levee.Timestamp) *Bucket {
	cost := rate.periodNanos()
	capacity := u128.Mul64(burst, cost)
	return &Bucket{count: max(rate.Count, 1), cost: cost, capacity: capacity, tokens: capacity, refilledAt: now}
}

func (b *Bucket) refill(now levee.Timestamp) {
	if now > b.refilledAt {
		elapsed := uint64(now - b.refilledAt)
		b.tokens = b.tokens.SatAdd(u128.Mul64(elapsed, b.count)).Min(b.capacity)
		b.refilledAt = now
	}
}

// TryAcquire takes one token at now, or says when one will be there.
func (b *Bucket) TryAcquire(now levee.Timestamp) Decision {
	b.refill(now)
	cost := u128.From(b.cost)
	if b.tokens.Cmp(cost) >= 0 {
		b.tokens = b.tokens.Sub(cost)
		return Decision{Allowed: true}
	}
	wait := cost.Sub(b.tokens).DivCeil64(b.count)
	return Decision{RetryAfter: time.Duration(min(wait, math.MaxInt64))}
}

// Available returns the whole tokens available at now (refilling first).
func (b *Bucket) Available(now levee.Timestamp) uint64 {
	b.refill(now)
	return b.tokens.Div64(max(b.cost, 1))
}

type entry struct {
	key    string
	bucket *Bucket
	elem   *list.Element
}

// Limiter is a route's rate limiter: one bucket per key, at most max_keys keys. It is safe
// for concurrent use.
type Limiter struct {
	name    string
	config  Config
	clock   levee.Clock
	mu      sync.Mutex
	buckets map[string]*entry
	byUse   *list.List // least recently used first
}

// Option configures a Limiter.
type Option func(*Limiter)

// WithClock sets the clock Allow reads (default levee.SystemClock).
func WithClock(c levee.Clock) Option { return func(l *Limiter) { l.clock = c } }

// New returns a limiter for the named route with no keys yet. Zero Burst and MaxKeys take
// their defaults; an impossible config is an error naming the key and the fix.
func New(name string, config Config, opts ...Option) (*Limiter, error) {
	if err := config.Validate(); err != nil {
		return nil, err
	}
	if config.MaxKeys == 0 {
		config.MaxKeys = DefaultMaxKeys
	}
	l := &Limiter{name: name, config: config, clock: levee.SystemClock, buckets: map[string]*entry{}, byUse: list.New()}
	for _, o := range opts {
		o(l)
	}
	return l, nil
}

// Config returns the config, defaults filled in.
func (l *Limiter) Config() Config { return l.config }

func (l *Limiter) keyOf(key *string) string {
	if l.config.Key == "" || key == nil {
		return ""
	}
	k := *key
	if len(k) > MaxKeyBytes {
		k = k[:MaxKeyBytes]
	}
	return k
}

// Acquire admits or limits one request at now. key is the value of the configured key header
// (nil when the request lacks it); it is ignored when the config has no key.
func (l *Limiter) Acquire(key *string, now levee.Timestamp) Decision {
	k := l.keyOf(key)
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.buckets[k]; ok {
		l.byUse.MoveToBack(e.elem)
		return e.bucket.TryAcquire(now)
	}
	for len(l.buckets) >= max(l.config.MaxKeys, 1) {
		front := l.byUse.Front()
		if front == nil {
			break
		}
		l.byUse.Remove(front)
		delete(l.buckets, front.Value.(*entry).key)
	}
	e := &entry{key: k, bucket: NewBucket(l.config.Rate, l.config.EffectiveBurst(), now)}
	d := e.bucket.TryAcquire(now)
	e.elem = l.byUse.PushBack(e)
	l.buckets[k] = e
	return d
}

// TrackedKeys returns the keys tracked now.
func (l *Limiter) TrackedKeys() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// Available returns the whole tokens left for key at now (a key not tracked has a full
// bucket).
func (l *Limiter) Available(key *string, now levee.Timestamp) uint64 {
	k := l.keyOf(key)
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.buckets[k]; ok {
		return e.bucket.Available(now)
	}
	return l.config.EffectiveBurst()
}

// Allow admits or limits a request now on the limiter's clock, keyed by the configured
// header of r (r may be nil for an unkeyed limiter). A limited request gets a *levee.Error
// with code rate_limited (errors.Is(err, levee.ErrRateLimited)) carrying the retry-after.
func (l *Limiter) Allow(ctx context.Context, r *http.Request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var key *string
	if l.config.Key != "" && r != nil {
		if v, ok := r.Header[http.CanonicalHeaderKey(string(l.config.Key))]; ok && len(v) > 0 {
			key = &v[0]
		}
	}
	d := l.Acquire(key, l.clock.Now())
	if d.Allowed {
		return nil
	}
	return &levee.Error{Code: levee.CodeRateLimited, Upstream: l.name, Reason: "rate_limited", RetryAfter: d.RetryAfter}
}
