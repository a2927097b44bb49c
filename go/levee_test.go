package levee_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/levee-dev/levee/go"
)

func TestParseDurationFormsAndErrors(t *testing.T) {
	ok := map[string]time.Duration{
		"7ns": 7, "7us": 7 * time.Microsecond, "7µs": 7 * time.Microsecond, "7μs": 7 * time.Microsecond,
		"250ms": 250 * time.Millisecond, "2m": 2 * time.Minute, "1h30m": 90 * time.Minute,
		"1.5s": 1500 * time.Millisecond, ".5s": 500 * time.Millisecond, "0s": 0,
		"0.0000000019s": 1, " 5s\n": 5 * time.Second,
	}
	for in, want := range ok {
		got, err := levee.ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	bad := map[string]levee.DurationErrorKind{
		"": levee.DurationEmpty, "250": levee.DurationBareNumber, "0": levee.DurationBareNumber,
		"-5s": levee.DurationNegative, "5 parsecs": levee.DurationUnknownUnit, "5S": levee.DurationUnknownUnit,
		"ms": levee.DurationMalformed, "1.2.3s": levee.DurationMalformed, ".s": levee.DurationMalformed,
		"5s3": levee.DurationMalformed, "99999999999999999999999h": levee.DurationOverflow,
		"3000000h": levee.DurationOverflow,
	}
	for in, kind := range bad {
		_, err := levee.ParseDuration(in)
		var de *levee.DurationError
		if !errors.As(err, &de) || de.Kind != kind {
			t.Errorf("ParseDuration(%q) error = %v; want kind %d", in, err, kind)
		}
	}
	_, err := levee.ParseDuration("250")
	if !strings.Contains(err.Error(), "`250ms`") {
		t.Errorf("bare number message lacks the fix: %v", err)
	}
}

func TestFormatDurationRoundTrips(t *testing.T) {
	for _, n := range []int64{0, 1, 999, 1000, 1_500_000, 250_000_000, 5_000_000_000, 90_000_000_000, 7_200_000_000_000} {
		d := time.Duration(n)
		back, err := levee.ParseDuration(levee.FormatDuration(d))
		if err != nil || back != d {
			t.Errorf("round trip of %d via %q gave %v, %v", n, levee.FormatDuration(d), back, err)
		}
	}
	if got := levee.FormatDuration(120 * time.Second); got != "2m" {
		t.Errorf("FormatDuration(2m) = %q", got)
	}
}

type sample struct {
	Wait   time.Duration             `json:"wait"`
	Opt    *time.Duration            `json:"opt"`
	Count  int                       `json:"count"`
	Ratio  float64                   `json:"ratio"`
	Class  levee.Criticality         `json:"class"`
	Shares map[levee.Criticality]int `json:"shares"`
	Status levee.StatusSet           `json:"status"`
	Nested struct {
		On bool `json:"on"`
	} `json:"nested"`
	Items []string `json:"items"`
}

func TestUnmarshalConfig(t *testing.T) {
	var s sample
	err := levee.UnmarshalConfig([]byte(`{"wait":"250ms","opt":"1s","count":3,"ratio":0.5,"class":"critical",
		"shares":{"sheddable":10},"status":["5xx",429],"nested":{"on":true},"items":["a"]}`), &s)
	if err != nil {
		t.Fatal(err)
	}
	if s.Wait != 250*time.Millisecond || *s.Opt != time.Second || s.Count != 3 || s.Ratio != 0.5 ||
		s.Class != levee.Critical || s.Shares[levee.Sheddable] != 10 || !s.Status.Contains(429) ||
		!s.Status.Contains(599) || !s.Nested.On || s.Items[0] != "a" {
		t.Fatalf("decoded %+v", s)
	}
	for in, want := range map[string]string{
		`{"wiat":"1s"}`:             "unknown field `wiat`, expected one of `wait`",
		`{"nested":{"of":1}}`:       "nested: unknown field `of`, expected `on`",
		`{"wait":250}`:              "has no unit",
		`{"wait":null}`:             "invalid type: null",
		`{"count":2.5}`:             "invalid type: floating point `2.5`",
		`{"class":"urgent"}`:        "unknown variant `urgent`",
		`{"wait":"1s","wait":"2s"}`: "duplicate field `wait`",
		`{"status":["600"]}`:        "outside 100-599",
		`{} {}`:                     "trailing",
	} {
		var s sample
		err := levee.UnmarshalConfig([]byte(in), &s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("UnmarshalConfig(%s) error = %v; want it to contain %q", in, err, want)
		}
	}
}

func TestErrorsMatchTheirSentinels(t *testing.T) {
	cause := errors.New("dial tcp: refused")
	err := fmt.Errorf("calling: %w", &levee.Error{Code: levee.CodeCircuitOpen, Upstream: "inventory", RetryAfter: 5 * time.Second, Err: cause})
	if !errors.Is(err, levee.ErrCircuitOpen) || errors.Is(err, levee.ErrBulkheadFull) || !errors.Is(err, cause) {
		t.Fatal("errors.Is does not follow codes and causes")
	}
	if got := levee.OutcomeOf(err); got != levee.Rejected {
		t.Errorf("OutcomeOf = %v", got)
	}
	if levee.OutcomeOf(context.Canceled) != levee.Cancelled || levee.OutcomeOf(context.DeadlineExceeded) != levee.Timeout ||
		levee.OutcomeOf(nil) != levee.Success || levee.OutcomeOf(cause) != levee.Failure {
		t.Error("OutcomeOf misclassifies context errors")
	}
	if !strings.Contains(err.Error(), "inventory is failing; Levee is protecting it and will retry in about 5 s.") {
		t.Errorf("message %q", err)
	}
}

func TestWriteProblemMatchesTheSpecExample(t *testing.T) {
	rec := httptest.NewRecorder()
	levee.WriteProblem(rec, levee.NewProblem(levee.CodeCircuitOpen, "inventory", 5*time.Second, "4bf92f3577b34da6a3ce929d0e0e4736"))
	if rec.Code != 503 || rec.Header().Get("Content-Type") != "application/problem+json" || rec.Header().Get("Retry-After") != "5" {
		t.Fatalf("status %d headers %v", rec.Code, rec.Header())
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"type": "urn:levee:error:circuit_open", "title": "Service temporarily unavailable",
		"status": 503.0, "code": "circuit_open",
		"detail":   "inventory is failing; Levee is protecting it and will retry in about 5 s.",
		"degraded": true, "retry_after_s": 5.0, "upstream": "inventory",
		"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("body %v\nwant %v", got, want)
	}
	rec = httptest.NewRecorder()
	levee.WriteError(rec, &levee.Error{Code: levee.CodeBadRequest, Upstream: "levee-timeout-ms"}, "")
	if rec.Code != 400 || rec.Header().Get("Retry-After") != "" || strings.Contains(rec.Body.String(), "retry_after_s") {
		t.Errorf("bad_request: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
}

func TestCriticality(t *testing.T) {
	c, err := levee.ParseCriticality(" Critical ")
	if err != nil || c != levee.Critical {
		t.Fatal(c, err)
	}
	if _, err := levee.ParseCriticality("urgent"); err == nil {
		t.Error("urgent accepted")
	}
	if !(levee.Sheddable < levee.Standard && levee.Standard < levee.Critical) || levee.Criticality(0) != levee.Standard {
		t.Error("ordering or default wrong")
	}
	ctx := levee.WithCriticality(context.Background(), levee.Sheddable)
	if levee.CriticalityFrom(ctx) != levee.Sheddable || levee.CriticalityFrom(context.Background()) != levee.Standard {
		t.Error("context round trip")
	}
}

func TestRandomSources(t *testing.T) {
	r := levee.NewSplitMix64(42)
	sum := 0.0
	for i := 0; i < 1000; i++ {
		d := r.Float64()
		if d < 0 || d >= 1 {
			t.Fatalf("draw %v", d)
		}
		sum += d
	}
	if mean := sum / 1000; mean < 0.4 || mean > 0.6 {
		t.Errorf("mean %v", mean)
	}
	// The same sequence as levee-core's SplitMix64::new(0): the reference first output.
	if got := levee.NewSplitMix64(0).Uint64(); got != 0xE220A8397B1DCDAF {
		t.Errorf("first SplitMix64 output %#x", got)
	}
	s := levee.NewScriptedRandom(0.25)
	if s.Float64() != 0.25 || s.TakeRanDry() || s.Float64() != 0.5 || !s.TakeRanDry() || s.TakeRanDry() {
		t.Error("scripted random")
	}
}

func TestManualClock(t *testing.T) {
	c := levee.NewManualClock(5)
	c.Advance(2 * time.Millisecond)
	if c.Now() != 2_000_005 {
		t.Errorf("now %d", c.Now())
	}
	if levee.Timestamp(10).Since(30) != 0 || levee.Timestamp(30).Since(10) != 20 {
		t.Error("Since must saturate")
	}
	if c.Time().Sub(c.Time()) != 0 {
		t.Error("wall time moves by itself")
	}
}
