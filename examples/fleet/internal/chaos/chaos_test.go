package chaos_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/levee-dev/levee/examples/fleet/internal/chaos"
	"github.com/levee-dev/levee/go/levhttp"
)

// newServer serves the controls and one wrapped route, /work, that answers 200 "done".
func newServer(t *testing.T, cfg chaos.Config) (*chaos.Chaos, *httptest.Server) {
	t.Helper()
	c := chaos.New(cfg)
	mux := http.NewServeMux()
	mux.Handle("/control/", c.Controls())
	work := c.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("done")) }))
	mux.Handle("/work", levhttp.Handler(work, levhttp.ServerOptions{Service: "test"}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(c.Close) // release anything still hanging before the server closes
	return c, srv
}

func post(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("POST %s: body is not JSON: %v", url, err)
	}
	return resp.StatusCode, body
}

func get(t *testing.T, url string, header ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestFailThenReset(t *testing.T) {
	_, srv := newServer(t, chaos.Config{Service: "svc"})
	if status, body := post(t, srv.URL+"/control/fail?status=503&ratio=1"); status != 200 || body["ok"] != true {
		t.Fatalf("fail control: %d %v", status, body)
	}
	status, body, h := get(t, srv.URL+"/work")
	if status != 503 || !strings.Contains(body, `"served_by":"svc"`) || h.Get("Content-Type") != "application/json" {
		t.Fatalf("failing: got %d %q (%s)", status, body, h.Get("Content-Type"))
	}
	if status, _ := post(t, srv.URL+"/control/reset"); status != 200 {
		t.Fatalf("reset: %d", status)
	}
	if status, body, _ := get(t, srv.URL+"/work"); status != 200 || body != "done" {
		t.Fatalf("after reset: got %d %q", status, body)
	}
}

func TestFailDefaultsAndRatioSpreadsEvenly(t *testing.T) {
	c, srv := newServer(t, chaos.Config{})
	post(t, srv.URL+"/control/fail")
	if b := c.Behaviour(); b.FailStatus != 503 || b.FailRatio != 1 {
		t.Fatalf("defaults: %+v", b)
	}
	post(t, srv.URL+"/control/fail?status=500&ratio=0.5")
	var got []int
	for i := 0; i < 6; i++ {
		status, _, _ := get(t, srv.URL+"/work")
		got = append(got, status)
	}
	want := []int{200, 500, 200, 500, 200, 500}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ratio 0.5: statuses %v, want %v", got, want)
		}
	}
}

func TestControlsRejectBadInput(t *testing.T) {
	c, srv := newServer(t, chaos.Config{})
	for _, tc := range []struct{ path, want string }{
		{"/control/fail?status=200", "status is \"200\""},
		{"/control/fail?status=abc", "from 400 to 599"},
		{"/control/fail?ratio=2", "ratio is \"2\""},
		{"/control/delay?ms=-1", "ms is \"-1\""},
		{"/control/hang?on=maybe", "on is \"maybe\""},
	} {
		status, body := post(t, srv.URL+tc.path)
		if status != 400 || !strings.Contains(body["error"].(string), tc.want) {
			t.Errorf("POST %s: got %d %v, want 400 mentioning %q", tc.path, status, body, tc.want)
		}
	}
	if b := c.Behaviour(); b != (chaos.Behaviour{}) {
		t.Fatalf("bad input changed the behaviour: %+v", b)
	}
	if status, body := post(t, srv.URL+"/control/explode"); status != 404 || !strings.Contains(body["error"].(string), "fail, delay, hang or reset") {
		t.Fatalf("unknown control: %d %v", status, body)
	}
	if status, _, h := get(t, srv.URL+"/control/reset"); status != 405 || h.Get("Allow") != "POST" {
		t.Fatalf("GET on a control: %d, Allow %q", status, h.Get("Allow"))
	}
}

// hangs starts a GET /work that hangs and returns once it does; the result arrives on the
// returned channel.
func hangs(ctx context.Context, t *testing.T, url string, started <-chan struct{}) <-chan error {
	t.Helper()
	result := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "done" {
				err = errors.New("answered " + resp.Status + " " + string(b))
			}
		}
		result <- err
	}()
	<-started
	return result
}

func TestHangIsReleasedByReset(t *testing.T) {
	started := make(chan struct{}, 1)
	_, srv := newServer(t, chaos.Config{OnHang: func(*http.Request) { started <- struct{}{} }})
	post(t, srv.URL+"/control/hang")
	result := hangs(context.Background(), t, srv.URL+"/work", started)
	select {
	case err := <-result:
		t.Fatalf("a hung call answered before the reset: %v", err)
	default:
	}
	post(t, srv.URL+"/control/reset")
	if err := <-result; err != nil {
		t.Fatalf("after reset the hung call should finish normally: %v", err)
	}
}

func TestHangEndsWhenTheCallerGivesUp(t *testing.T) {
	started := make(chan struct{}, 1)
	_, srv := newServer(t, chaos.Config{OnHang: func(*http.Request) { started <- struct{}{} }})
	post(t, srv.URL+"/control/hang?on=true")
	ctx, cancel := context.WithCancel(context.Background())
	result := hangs(ctx, t, srv.URL+"/work", started)
	cancel()
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Fatalf("want the caller's cancellation, got %v", err)
	}
}

func TestHangAnswersDeadlineExceededWhenTheDeadlinePasses(t *testing.T) {
	_, srv := newServer(t, chaos.Config{})
	post(t, srv.URL+"/control/hang")
	status, body, h := get(t, srv.URL+"/work", "levee-timeout-ms", "1")
	if status != 504 || !strings.Contains(body, `"code":"deadline_exceeded"`) || h.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %q", status, body)
	}
}

func TestDelayAnswersDeadlineExceededWhenTheDeadlineIsShorter(t *testing.T) {
	c, srv := newServer(t, chaos.Config{})
	post(t, srv.URL+"/control/delay?ms=600000")
	if c.Behaviour().Delay.Milliseconds() != 600000 {
		t.Fatalf("delay not set: %+v", c.Behaviour())
	}
	status, body, _ := get(t, srv.URL+"/work", "levee-timeout-ms", "1")
	if status != 504 || !strings.Contains(body, `"code":"deadline_exceeded"`) {
		t.Fatalf("got %d %q", status, body)
	}
	post(t, srv.URL+"/control/delay?ms=0")
	if status, _, _ := get(t, srv.URL+"/work"); status != 200 {
		t.Fatalf("delay 0: %d", status)
	}
}

func TestCloseReleasesHungCallsAsDraining(t *testing.T) {
	started := make(chan struct{}, 1)
	c, srv := newServer(t, chaos.Config{OnHang: func(*http.Request) { started <- struct{}{} }})
	post(t, srv.URL+"/control/hang")
	result := make(chan string, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/work")
		if err != nil {
			result <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		result <- http.StatusText(resp.StatusCode) + " " + string(b)
	}()
	<-started
	c.Close()
	if got := <-result; !strings.HasPrefix(got, "Service Unavailable") || !strings.Contains(got, `"code":"draining"`) {
		t.Fatalf("got %q", got)
	}
	// Later calls that would hang answer at once.
	if status, body, _ := get(t, srv.URL+"/work"); status != 503 || !strings.Contains(body, "draining") {
		t.Fatalf("after Close: %d %q", status, body)
	}
}
