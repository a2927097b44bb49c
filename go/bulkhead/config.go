package bulkhead

import (
	"fmt"
	"time"

	"github.com/levee-dev/levee/go"
)

// Shares is shares: {critical, standard, sheddable}: the percent of the limit each class may
// fill. A zero field takes its default (critical 100, standard 80, sheddable 50).
type Shares struct {
	Critical  int `json:"critical"`
	Standard  int `json:"standard"`
	Sheddable int `json:"sheddable"`
}

// DefaultShares returns the SPEC default shares.
func DefaultShares() Shares { return Shares{Critical: 100, Standard: 80, Sheddable: 50} }

// Get returns the share of class, in percent.
func (s Shares) Get(class levee.Criticality) int {
	switch class {
	case levee.Critical:
		return s.Critical
	case levee.Sheddable:
		return s.Sheddable
	}
	return s.Standard
}

// ClassLimit returns the in-flight count below which class is admitted under limit:
// max(1, floor(limit × share / 100)), computed exactly in integers.
func (s Shares) ClassLimit(class levee.Criticality, limit uint32) uint32 {
	share := s.Get(class)
	if share < 0 {
		share = 0
	}
	c := uint64(limit) * uint64(share) / 100
	if c > maxU32 {
		c = maxU32
	}
	return max(uint32(c), 1)
}

// Config is bulkhead: {max_concurrent, max_queue, max_wait, shares, limit} (SPEC §3). The
// zero value of every field means the SPEC default, so Config{} is the default bulkhead.
type Config struct {
	MaxConcurrent int           `json:"max_concurrent"` // calls in flight at once; 0 = 100; unused with Limit
	MaxQueue      int           `json:"max_queue"`      // calls allowed to wait; 0 = reject at once when full
	MaxWait       time.Duration `json:"max_wait"`       // longest wait in the queue; > 0 exactly when MaxQueue > 0
	Shares        Shares        `json:"shares"`         // percent of the limit each class may fill
	Limit         *LimitConfig  `json:"limit"`          // an adaptive limit that replaces MaxConcurrent
}

// DefaultConfig returns the SPEC defaults, every field written out.
func DefaultConfig() Config {
	return Config{MaxConcurrent: 100, Shares: DefaultShares()}
}

// ParseConfig reads a bulkhead config written as JSON in the shape of the YAML config
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
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = d.MaxConcurrent
	}
	if c.Shares.Critical == 0 {
		c.Shares.Critical = d.Shares.Critical
	}
	if c.Shares.Standard == 0 {
		c.Shares.Standard = d.Shares.Standard
	}
	if c.Shares.Sheddable == 0 {
		c.Shares.Sheddable = d.Shares.Sheddable
	}
	if c.Limit != nil {
		l := c.Limit.WithDefaults()
		c.Limit = &l
	}
	return c
}

// Validate checks every value as written; the message names the key, what is wrong and how
// to fix it, in the same words as levee-core.
func (c Config) Validate() error {
	if c.Limit == nil && c.MaxConcurrent == 0 {
		return fmt.Errorf("max_concurrent is 0: a bulkhead must let at least one call through; set max_concurrent to 1 or more (default 100)")
	}
	if c.MaxConcurrent < 0 || c.MaxConcurrent > maxU32 {
		return fmt.Errorf("max_concurrent is %d: use a whole number from 1 to %d", c.MaxConcurrent, maxU32)
	}
	if c.MaxQueue < 0 || c.MaxQueue > maxU32 {
		return fmt.Errorf("max_queue is %d: use a whole number from 0 to %d", c.MaxQueue, maxU32)
	}
	if c.MaxWait < 0 {
		return fmt.Errorf("max_wait is %s: durations count time forward", levee.FormatDuration(c.MaxWait))
	}
	for _, class := range levee.Criticalities {
		if share := c.Shares.Get(class); share < 1 || share > 100 {
			return fmt.Errorf("shares.%s is %d: a share is a percent of the limit, from 1 to 100", class, share)
		}
	}
	for i := 0; i+1 < len(levee.Criticalities); i++ {
		lower, higher := levee.Criticalities[i], levee.Criticalities[i+1]
		low, high := c.Shares.Get(lower), c.Shares.Get(higher)
		if low > high {
			return fmt.Errorf("shares.%s (%d) is larger than shares.%s (%d): a less critical class may not get a larger share; lower shares.%s or raise shares.%s",
				lower, low, higher, high, lower, higher)
		}
	}
	if c.MaxQueue > 0 && c.MaxWait == 0 {
		return fmt.Errorf("max_queue is %d but max_wait is 0s: set max_wait (e.g. 50ms) so queued calls cannot wait forever", c.MaxQueue)
	}
	if c.MaxQueue == 0 && c.MaxWait != 0 {
		return fmt.Errorf("max_wait is %s but max_queue is 0, so no call ever waits: set max_queue (e.g. 32) to queue calls, or remove max_wait",
			levee.FormatDuration(c.MaxWait))
	}
	if c.Limit != nil {
		if err := c.Limit.Validate(); err != nil {
			return fmt.Errorf("limit: %w", err)
		}
	}
	return nil
}
