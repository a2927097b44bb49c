package registry

import "context"

const (
	fnvOffset64 uint64 = 0xcbf29ce484222325
	fnvPrime64  uint64 = 0x100000001b3
)

// ToggleBucket returns the percentage bucket (0–99) of key for toggle name: FNV-1a 64 of the
// UTF-8 bytes of name + ":" + key, modulo 100 (SPEC §10). It is levee-core's
// fleet::toggle_bucket, so a caller-supplied key (a user id, a tenant) lands on the same side
// of a percentage toggle in Go and Rust; a toggle at p percent is on for the keys whose bucket
// is below p.
func ToggleBucket(name, key string) int {
	h := fnvOffset64
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= fnvPrime64
	}
	h ^= ':'
	h *= fnvPrime64
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= fnvPrime64
	}
	return int(h % 100)
}

// toggle is a toggle as last received: on, off, or on for percent of keys.
type toggle struct {
	state   string // "on", "off" or "percent"
	percent int
	version uint64
}

func (t toggle) enabled(name, key string) bool {
	switch t.state {
	case "on":
		return true
	case "percent":
		return ToggleBucket(name, key) < t.percent
	}
	return false
}

// Enabled reports whether toggle name is on for key (a user id, a tenant: anything that
// should land on the same side every time). A percentage toggle is on for the keys whose
// ToggleBucket is below its percentage, exactly as in every other Levee. An unknown toggle is
// off. Toggles are configuration rather than protection, so they keep their last-known values
// however long the registry is unreachable. Enabled never waits: ctx is accepted so call
// sites read like the rest of a request path.
func (c *Client) Enabled(ctx context.Context, name, key string) bool {
	_ = ctx
	s := c.state.Load()
	if s == nil {
		return false
	}
	t, ok := s.toggles[name]
	return ok && t.enabled(name, key)
}
