package recommend_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/levee-dev/levee/examples/fleet/internal/chaos"
	"github.com/levee-dev/levee/examples/fleet/internal/recommend"
)

func newServer(t *testing.T, cfg recommend.Config) (*recommend.Service, *httptest.Server) {
	t.Helper()
	svc, err := recommend.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(svc.Chaos().Close)
	return svc, srv
}

type answer struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url string, header ...string) answer {
	t.Helper()
	a, err := try(method, url, header...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return a
}

func try(method, url string, header ...string) (answer, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return answer{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] != "" {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}, err
}

func TestRecommendations(t *testing.T) {
	_, srv := newServer(t, recommend.Config{})
	a := do(t, "GET", srv.URL+"/recommendations?item=42")
	if a.status != 200 || a.header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %q", a.status, a.body)
	}
	var got struct{ Items []recommend.Item }
	if err := json.Unmarshal([]byte(a.body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Items) != 3 {
		t.Fatalf("want 3 items, got %v", got.Items)
	}
	for i, it := range got.Items {
		if it.ID == "42" || it.ID == "" || it.Name != "item "+it.ID || it.Reason == "" {
			t.Errorf("item %d: %+v", i, it)
		}
		if want := recommend.For("42")[i]; it != want {
			t.Errorf("item %d: %+v, want the same as For: %+v", i, it, want)
		}
	}
}

func TestBadRequests(t *testing.T) {
	_, srv := newServer(t, recommend.Config{})
	for _, tc := range []struct{ url, header, value, want string }{
		{"/recommendations", "", "", `item is \"\"`},
		{"/recommendations?item=a/b", "", "", `item is \"a/b\"`},
		{"/recommendations?item=1", "levee-criticality", "urgent", `"code":"bad_request"`},
		{"/recommendations?item=1", "levee-timeout-ms", "soon", `"code":"bad_request"`},
	} {
		a := do(t, "GET", srv.URL+tc.url, tc.header, tc.value)
		if a.status != 400 || a.header.Get("Content-Type") != "application/problem+json" || !strings.Contains(a.body, tc.want) {
			t.Errorf("GET %s (%s: %s): got %d %s, want 400 problem+json with %s", tc.url, tc.header, tc.value, a.status, a.body, tc.want)
		}
	}
}

func TestHealthAndMetrics(t *testing.T) {
	_, srv := newServer(t, recommend.Config{})
	if a := do(t, "GET", srv.URL+"/healthz"); a.status != 200 || a.body != "ok\n" {
		t.Fatalf("healthz: %d %q", a.status, a.body)
	}
	do(t, "GET", srv.URL+"/recommendations?item=1", "levee-criticality", "sheddable")
	a := do(t, "GET", srv.URL+"/metrics")
	if a.status != 200 || !strings.Contains(a.body, `levee_bulkhead_in_flight{language="go",partition="recommendations",service="recommendations"} 0`) {
		t.Fatalf("metrics: %d\n%s", a.status, a.body)
	}
}

func TestControlsFailAndReset(t *testing.T) {
	_, srv := newServer(t, recommend.Config{})
	if a := do(t, "POST", srv.URL+"/control/fail?status=503"); a.status != 200 {
		t.Fatalf("fail: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", srv.URL+"/recommendations?item=1"); a.status != 503 || !strings.Contains(a.body, `"served_by":"recommendations"`) {
		t.Fatalf("failing: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", srv.URL+"/healthz"); a.status != 200 {
		t.Fatalf("healthz must not fail with the service: %d", a.status)
	}
	do(t, "POST", srv.URL+"/control/reset")
	if a := do(t, "GET", srv.URL+"/recommendations?item=1"); a.status != 200 {
		t.Fatalf("after reset: %d %s", a.status, a.body)
	}
}

// With 2 slots, sheddable calls may hold only 1 (50%), critical ones both: while a sheddable
// call hangs, another sheddable one is shed at once and a critical one is still admitted.
func TestShedsSheddableCallsFirst(t *testing.T) {
	started := make(chan string, 2)
	_, srv := newServer(t, recommend.Config{MaxConcurrent: 2, Chaos: chaos.Config{
		OnHang: func(r *http.Request) { started <- r.Header.Get("levee-criticality") },
	}})
	do(t, "POST", srv.URL+"/control/hang")
	type result struct {
		a   answer
		err error
	}
	hung := make(chan result, 2)
	hang := func(class string) {
		go func() {
			a, err := try("GET", srv.URL+"/recommendations?item=1", "levee-criticality", class)
			hung <- result{a, err}
		}()
		if got := <-started; got != class {
			t.Fatalf("hanging call: %q, want %q", got, class)
		}
	}
	hang("sheddable")

	a := do(t, "GET", srv.URL+"/recommendations?item=1", "levee-criticality", "sheddable")
	if a.status != 503 || a.header.Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(a.body, `"code":"bulkhead_full"`) || !strings.Contains(a.body, `"upstream":"recommendations"`) {
		t.Fatalf("second sheddable call: %d %s, want 503 bulkhead_full", a.status, a.body)
	}
	hang("critical") // admitted: it reached the handler and hangs there

	m := do(t, "GET", srv.URL+"/metrics")
	if !strings.Contains(m.body, `levee_bulkhead_rejections_total{criticality="sheddable",language="go",partition="recommendations",reason="full",service="recommendations"} 1`) {
		t.Fatalf("rejection not counted:\n%s", m.body)
	}
	do(t, "POST", srv.URL+"/control/reset")
	for i := 0; i < 2; i++ {
		r := <-hung
		if r.err != nil || r.a.status != 200 {
			t.Fatalf("released call: %v %d %s", r.err, r.a.status, r.a.body)
		}
	}
}
