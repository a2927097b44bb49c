package deadline_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/deadline"
)

func kind(err error) string {
	var de *deadline.Error
	if errors.As(err, &de) {
		return de.Kind.String()
	}
	return "none"
}

func TestParseAndFormat(t *testing.T) {
	if d, err := deadline.ParseTimeoutMs(" 0250\t"); err != nil || d != 250*time.Millisecond {
		t.Errorf("%v %v", d, err)
	}
	if d, _ := deadline.ParseTimeoutMs("999999999999999999"); d != deadline.MaxRemaining {
		t.Errorf("cap %v", d)
	}
	for in, want := range map[string]string{"": "empty", "-5": "negative", "+5": "not_a_number", "1.5": "not_a_number",
		"250ms": "not_a_number", "١٢": "not_a_number", "1000000000000000000": "too_long"} {
		if _, err := deadline.ParseTimeoutMs(in); kind(err) != want {
			t.Errorf("timeout-ms %q: %v", in, err)
		}
	}
	for in, want := range map[string]string{"": "empty", "100": "missing_unit", "100x": "unknown_unit", "100é": "unknown_unit",
		"S": "not_a_number", "-1S": "negative", "1.5S": "not_a_number", "123456789n": "too_long", "-1": "negative",
		"-": "not_a_number", "123456789012345678901234": "missing_unit"} {
		if _, err := deadline.ParseGRPCTimeout(in); kind(err) != want {
			t.Errorf("grpc %q: %v, want %s", in, err, want)
		}
	}
	if d, _ := deadline.ParseGRPCTimeout("99999999H"); d != deadline.MaxRemaining {
		t.Errorf("grpc cap %v", d)
	}
	for d, want := range map[time.Duration]string{0: "0n", 99_999_999: "99999999n", 100_000_001: "100001u",
		100 * time.Second: "100000m", 100_000 * time.Second: "100000S", 100_000_000 * time.Second: "1666667M",
		deadline.MaxRemaining: "2562048H"} {
		if got := deadline.FormatGRPCTimeout(d); got != want {
			t.Errorf("FormatGRPCTimeout(%v) = %s, want %s", d, got, want)
		}
	}
	if deadline.FormatTimeoutMs(999_999) != "0" || deadline.FormatTimeoutMs(deadline.MaxRemaining) != "9223372036854" {
		t.Error("FormatTimeoutMs rounds down")
	}
	_, err := deadline.ParseTimeoutMs("abc")
	if !strings.Contains(err.Error(), "`levee-timeout-ms: 250`") || !errors.Is(err, levee.ErrBadRequest) {
		t.Errorf("message %q", err)
	}
}

func TestContextMapping(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	h := http.Header{}
	h.Set("levee-timeout-ms", "800")
	h.Set("grpc-timeout", "300m")
	d, ok, err := deadline.FromHeader(h)
	if err != nil || !ok || d != 300*time.Millisecond {
		t.Fatalf("%v %v %v", d, ok, err)
	}
	ctx, cancel := deadline.WithRemaining(context.Background(), now, d)
	defer cancel()
	out := http.Header{}
	if !deadline.SetHeader(out, ctx, now.Add(100*time.Millisecond+500*time.Microsecond)) || out.Get("levee-timeout-ms") != "199" {
		t.Errorf("outbound %v", out)
	}
	if r, ok := deadline.Remaining(ctx, now.Add(time.Hour)); !ok || r != 0 {
		t.Errorf("spent: %v %v", r, ok)
	}
	if _, ok, _ := deadline.FromHeader(http.Header{}); ok {
		t.Error("no headers, no deadline")
	}
	dl := deadline.After(1000, 5*time.Microsecond)
	if dl.Remaining(2000) != 4*time.Microsecond || !dl.IsSpent(6000) {
		t.Error("Deadline counts down")
	}
}
