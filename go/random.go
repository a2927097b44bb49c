package levee

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
)

// Random is a source of uniform draws in [0, 1). Jitter (breaker open waits, retry backoff)
// draws from one handed in by the caller, so conformance vectors can fix every draw.
type Random interface {
	Float64() float64
}

const goldenGamma uint64 = 0x9E3779B97F4A7C15

// SplitMix64 is a fast, lock-free generator over one atomic word, good enough for jitter. It is
// not a cryptographic generator and must never be used as one. It produces the same sequence as
// levee-core's random::SplitMix64 for the same seed.
type SplitMix64 struct {
	state atomic.Uint64
}

// NewSplitMix64 returns a generator starting from seed.
func NewSplitMix64(seed uint64) *SplitMix64 {
	s := &SplitMix64{}
	s.state.Store(seed)
	return s
}

// NewRandom returns a SplitMix64 seeded from the operating system's entropy (or the time, if
// that fails).
func NewRandom() *SplitMix64 {
	var b [8]byte
	seed := uint64(time.Now().UnixNano())
	if _, err := rand.Read(b[:]); err == nil {
		seed ^= binary.LittleEndian.Uint64(b[:])
	}
	return NewSplitMix64(seed)
}

// Uint64 returns the next 64 random bits.
func (s *SplitMix64) Uint64() uint64 {
	z := s.state.Add(goldenGamma)
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// Float64 returns the next draw, uniform in [0, 1): 53 high bits, so every representable value
// is equally likely.
func (s *SplitMix64) Float64() float64 {
	return float64(s.Uint64()>>11) * (1.0 / float64(uint64(1)<<53))
}

// ScriptedRandom replays a fixed list of draws. When the list is empty it returns 0.5 and
// remembers that it ran dry, so a conformance runner can name the step that needed a draw it
// did not supply. It is safe for concurrent use.
type ScriptedRandom struct {
	mu     sync.Mutex
	draws  []float64
	ranDry bool
}

// NewScriptedRandom returns a source that will return draws in order.
func NewScriptedRandom(draws ...float64) *ScriptedRandom {
	return &ScriptedRandom{draws: append([]float64(nil), draws...)}
}

// Push appends draws.
func (r *ScriptedRandom) Push(draws ...float64) {
	r.mu.Lock()
	r.draws = append(r.draws, draws...)
	r.mu.Unlock()
}

// Remaining returns the number of draws supplied but not yet used.
func (r *ScriptedRandom) Remaining() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.draws)
}

// TakeRanDry reports (once) whether a draw was asked for after the list ran out, and resets
// the flag.
func (r *ScriptedRandom) TakeRanDry() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	dry := r.ranDry
	r.ranDry = false
	return dry
}

// Float64 returns the next scripted draw, or 0.5 when none is left.
func (r *ScriptedRandom) Float64() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.draws) == 0 {
		r.ranDry = true
		return 0.5
	}
	d := r.draws[0]
	r.draws = r.draws[1:]
	return d
}
