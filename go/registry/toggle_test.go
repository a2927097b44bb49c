package registry

import (
	"context"
	"fmt"
	"testing"
)

// fnv1a64 is FNV-1a 64 over b, for checking ToggleBucket against the published vectors.
func fnv1a64(b []byte) uint64 {
	h := fnvOffset64
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return h
}

// The values levee-core pins in fleet.rs (toggle_buckets_are_fnv1a_of_name_colon_key), and
// buckets computed by levee_core::fleet::toggle_bucket itself, so a key lands on the same
// side of a percentage toggle in Go and Rust.
func TestToggleBucketMatchesLeveeCore(t *testing.T) {
	for in, want := range map[string]uint64{
		"":                     0xcbf29ce484222325,
		"a":                    0xaf63dc4c8601ec8c,
		"foobar":               0x85944171f73967e8,
		"new-checkout:user-42": 0xc5b0232d5957a326,
	} {
		if got := fnv1a64([]byte(in)); got != want {
			t.Errorf("fnv1a64(%q) = %#x, want %#x", in, got, want)
		}
	}
	if got, want := ToggleBucket("new-checkout", "user-42"), int(fnv1a64([]byte("new-checkout:user-42"))%100); got != want {
		t.Errorf("ToggleBucket(new-checkout, user-42) = %d, want fnv1a64 %% 100 = %d", got, want)
	}
	// levee_core::fleet::toggle_bucket(name, key).
	for _, c := range []struct {
		name, key string
		bucket    int
	}{
		{"new-checkout", "user-42", 50},
		{"beta", "user-1", 90},
		{"t", "u0", 6},
		{"t", "u1", 17},
		{"t", "u2", 84},
		{"t", "u3", 95},
		{"rollout", "inventory", 60},
		{"rollout", "tenant-7", 96},
		{"dark-mode", "é", 15}, // UTF-8 bytes
		{"x", "", 3},
		{"", "", 89},
	} {
		if got := ToggleBucket(c.name, c.key); got != c.bucket {
			t.Errorf("ToggleBucket(%q, %q) = %d, want %d (levee-core)", c.name, c.key, got, c.bucket)
		}
	}
	// Half of "user-0".."user-19" for toggle "half", as levee-core buckets them.
	want := []int{64, 75, 86, 97, 8, 19, 30, 41, 52, 63, 9, 98, 87, 76, 53, 42, 31, 20, 97, 86}
	for i, b := range want {
		if got := ToggleBucket("half", fmt.Sprintf("user-%d", i)); got != b {
			t.Errorf("ToggleBucket(half, user-%d) = %d, want %d", i, got, b)
		}
	}
}

func TestTogglePercentSemantics(t *testing.T) {
	on := 0
	for i := 0; i < 1000; i++ {
		if (toggle{state: "percent", percent: 25}).enabled("t", fmt.Sprintf("u%d", i)) {
			on++
		}
	}
	if on != 246 { // levee-core: Toggle::Percent { percent: 25 } over t/u0..u999
		t.Errorf("25%% of 1000 keys: %d on, levee-core has 246", on)
	}
	// new-checkout/user-42 is in bucket 50: off at 50 %, on at 51 %.
	if (toggle{state: "percent", percent: 50}).enabled("new-checkout", "user-42") {
		t.Error("bucket 50 is on at 50%")
	}
	if !(toggle{state: "percent", percent: 51}).enabled("new-checkout", "user-42") {
		t.Error("bucket 50 is off at 51%")
	}
	for _, c := range []struct {
		t    toggle
		want bool
	}{
		{toggle{state: "on"}, true},
		{toggle{state: "off"}, false},
		{toggle{state: "percent", percent: 0}, false},
		{toggle{state: "percent", percent: 100}, true},
		{toggle{state: "maybe"}, false},
	} {
		if got := c.t.enabled("t", "x"); got != c.want {
			t.Errorf("%+v.enabled = %v, want %v", c.t, got, c.want)
		}
	}
}

func TestEnabledBeforeAnyStateIsOff(t *testing.T) {
	c, err := New(Config{URL: "http://127.0.0.1:9", Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Enabled(context.Background(), "beta", "user-1") {
		t.Error("an unknown toggle is on")
	}
}

func BenchmarkToggleBucket(b *testing.B) {
	for i := 0; i < b.N; i++ {
		_ = ToggleBucket("new-checkout", "user-42")
	}
}
