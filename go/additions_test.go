package levee_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/levee-dev/levee/go"
)

func TestProblemLeavesOutFieldsWithNoValue(t *testing.T) {
	// A plain RFC 9457 problem that is not Levee's: no code, no degraded, no empty strings.
	b, err := json.Marshal(levee.Problem{Type: "about:blank", Title: "Not found", Status: 404, Detail: "There is no product 7.", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"about:blank","title":"Not found","status":404,"detail":"There is no product 7.","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	// A Levee envelope keeps degraded even when false (bad_request), as levee-http writes it.
	b, _ = json.Marshal(levee.NewProblem(levee.CodeBadRequest, "", 0, ""))
	want = `{"type":"urn:levee:error:bad_request","title":"Bad request","status":400,"code":"bad_request","detail":"The request to the service was malformed.","degraded":false}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	b, _ = json.Marshal(levee.NewProblem(levee.CodeCircuitOpen, "inventory", 5*time.Second, "4bf92f3577b34da6a3ce929d0e0e4736"))
	want = `{"type":"urn:levee:error:circuit_open","title":"Service temporarily unavailable","status":503,"code":"circuit_open","detail":"inventory is failing; Levee is protecting it and will retry in about 5 s.","degraded":true,"retry_after_s":5,"upstream":"inventory","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

func TestDegradedValuesMatchLeveeHTTP(t *testing.T) {
	for _, kind := range []levee.DegradedKind{levee.DegradedStale, levee.DegradedStatic} {
		for _, code := range levee.Codes {
			v := levee.DegradedValue(kind, code)
			if want := kind.String() + "; reason=" + code.String(); v != want {
				t.Errorf("DegradedValue = %q, want %q", v, want)
			}
			k, c, ok := levee.ParseDegraded(v)
			if !ok || k != kind || c != code {
				t.Errorf("ParseDegraded(%q) = %v %v %v", v, k, c, ok)
			}
		}
	}
	if k, c, ok := levee.ParseDegraded("static ;reason = circuit_open"); !ok || k != levee.DegradedStatic || c != levee.CodeCircuitOpen {
		t.Errorf("spaces around ; and = must be accepted: %v %v %v", k, c, ok)
	}
	for _, bad := range []string{"stale", "cached; reason=circuit_open", "stale; why=circuit_open", "stale; reason=oops", "", "stale; reason=circuit_open, static; reason=draining"} {
		if _, _, ok := levee.ParseDegraded(bad); ok {
			t.Errorf("ParseDegraded(%q) accepted", bad)
		}
	}
}

func TestDegradedValuesReadsEveryLineAndList(t *testing.T) {
	h := http.Header{}
	levee.AddDegraded(h, levee.DegradedStatic, levee.CodeCircuitOpen)
	h.Add(levee.HeaderDegraded, "stale; reason=upstream_timeout, nonsense, static; reason=feature_disabled")
	got := levee.DegradedValues(h)
	want := []levee.Degraded{
		{Kind: levee.DegradedStatic, Reason: levee.CodeCircuitOpen},
		{Kind: levee.DegradedStale, Reason: levee.CodeUpstreamTimeout},
		{Kind: levee.DegradedStatic, Reason: levee.CodeFeatureDisabled},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got[0].String() != "static; reason=circuit_open" || h.Values("Levee-Degraded")[0] != "static; reason=circuit_open" {
		t.Errorf("AddDegraded wrote %q", h.Values(levee.HeaderDegraded))
	}
	if levee.DegradedValues(http.Header{}) != nil {
		t.Error("no header must be nil")
	}
}

// get fetches url from a real server.
func get(t *testing.T, h http.HandlerFunc) *http.Response {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestProblemFromResponseReadsALeveeRefusalBack(t *testing.T) {
	resp := get(t, func(w http.ResponseWriter, _ *http.Request) {
		p := levee.NewProblem(levee.CodeCircuitOpen, "inventory", 0, "4bf92f3577b34da6a3ce929d0e0e4736")
		w.Header().Set("Retry-After", "7") // the header fills retry_after_s when the body has none
		levee.WriteProblem(w, p)
	})
	p, ok := levee.ProblemFromResponse(resp)
	if !ok {
		t.Fatal("not read")
	}
	if p.Code != "circuit_open" || p.Status != 503 || p.RetryAfterS != 7 || p.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || p.Upstream != "inventory" {
		t.Errorf("problem %+v", p)
	}
	err, ok := p.AsError()
	if !ok || !errors.Is(err, levee.ErrCircuitOpen) || err.RetryAfter != 7*time.Second || err.Upstream != "inventory" {
		t.Errorf("AsError = %v %v", err, ok)
	}
	// The body is still there for the caller.
	body, _ := io.ReadAll(resp.Body)
	if !bytes.Contains(body, []byte(`"code":"circuit_open"`)) {
		t.Errorf("body after reading: %s", body)
	}
}

func TestProblemFromResponseLeavesOtherAnswersIntact(t *testing.T) {
	big := strings.Repeat("x", levee.MaxProblemBody+10)
	cases := []struct {
		name string
		ct   string
		body string
	}{
		{"json", "application/json", `{"code":"circuit_open"}`},
		{"not json", "application/problem+json", `oops`},
		{"array", "application/problem+json", `[1]`},
		{"too long", "application/problem+json", `{"detail":"` + big + `"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := get(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", c.ct)
				w.WriteHeader(503)
				_, _ = io.WriteString(w, c.body)
			})
			if p, ok := levee.ProblemFromResponse(resp); ok {
				t.Fatalf("read %+v", p)
			}
			body, _ := io.ReadAll(resp.Body)
			if string(body) != c.body {
				t.Errorf("body changed: %d bytes, want %d", len(body), len(c.body))
			}
		})
	}
	// A problem that is not Levee's is read, but is no *levee.Error.
	resp := get(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json; charset=utf-8")
		w.WriteHeader(404)
		_, _ = io.WriteString(w, `{"type":"about:blank","title":"Not found"}`)
	})
	p, ok := levee.ProblemFromResponse(resp)
	if !ok || p.Status != 404 || p.Code != "" {
		t.Fatalf("got %+v %v", p, ok)
	}
	if _, ok := p.AsError(); ok {
		t.Error("a problem without a code must not become a *levee.Error")
	}
}

func ExampleProblemFromResponse() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		levee.WriteProblem(w, levee.NewProblem(levee.CodeBulkheadFull, "pricing", 2*time.Second, ""))
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	if p, ok := levee.ProblemFromResponse(resp); ok {
		if err, ok := p.AsError(); ok {
			fmt.Println(errors.Is(err, levee.ErrBulkheadFull), err.RetryAfter)
		}
	}
	// Output: true 2s
}

func ExampleDegradedValue() {
	h := http.Header{}
	levee.AddDegraded(h, levee.DegradedStatic, levee.CodeCircuitOpen)
	fmt.Println(h.Get(levee.HeaderDegraded))
	for _, d := range levee.DegradedValues(h) {
		fmt.Println(d.Kind, d.Reason)
	}
	// Output:
	// static; reason=circuit_open
	// static circuit_open
}
