// Package chaos lets a demo service be told, over HTTP, to fail, slow down or hang, so that
// the fleet's resilience can be watched at work. The storefront and the recommendations
// service share it, and it answers the same control requests as the Rust inventory service:
//
//	POST /control/fail?status=503&ratio=1   fail this fraction of calls with this status
//	POST /control/delay?ms=200              wait this long before answering
//	POST /control/hang[?on=true]            never answer (until the caller gives up or a reset)
//	POST /control/reset                     healthy and fast again; hung calls are released
//
// Each answers 200 with the behaviour now in force, as JSON. Only the routes wrapped with Wrap
// are affected: health, metrics and the controls themselves always answer.
//
// A ratio below 1 fails calls evenly and deterministically (ratio 0.5: every second call), as
// the inventory service does, so a demo behaves the same every time.
package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/levhttp"
)

// MaxDelay is the longest delay /control/delay accepts.
const MaxDelay = 10 * time.Minute

// Behaviour is what the wrapped routes do. The zero value is healthy: no failures, no delay,
// no hang.
type Behaviour struct {
	FailStatus int           // the status of a failed call (400-599); 0 = no failures
	FailRatio  float64       // the fraction of calls failed, 0 to 1
	Delay      time.Duration // the wait before answering
	Hang       bool          // never answer
}

// MarshalJSON writes the behaviour as the control endpoints answer it:
// {"fail_status": 503, "fail_ratio": 1, "delay_ms": 0, "hang": false}.
func (b Behaviour) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		FailStatus int     `json:"fail_status"`
		FailRatio  float64 `json:"fail_ratio"`
		DelayMs    int64   `json:"delay_ms"`
		Hang       bool    `json:"hang"`
	}{b.FailStatus, b.FailRatio, b.Delay.Milliseconds(), b.Hang})
}

// Config configures a Chaos. The zero value is usable.
type Config struct {
	// Service names the service in failure bodies ({"error": ..., "served_by": Service}).
	Service string
	// OnHang, if set, is called when a call starts hanging (tests use it to know a call is
	// stuck without waiting for it).
	OnHang func(*http.Request)
}

// Chaos holds a service's current behaviour. It is safe for concurrent use.
type Chaos struct {
	cfg Config

	mu      sync.Mutex
	b       Behaviour
	calls   uint64        // calls decided since the failure ratio was set, for even spreading
	release chan struct{} // closed (and replaced) to wake hung calls
	closed  bool
}

// New returns a healthy Chaos.
func New(cfg Config) *Chaos {
	return &Chaos{cfg: cfg, release: make(chan struct{})}
}

// Behaviour returns the behaviour in force.
func (c *Chaos) Behaviour() Behaviour {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b
}

// Set replaces the behaviour (what the control endpoints do). Calls hanging under the old
// behaviour are released when the new one does not hang.
func (c *Chaos) Set(b Behaviour) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.FailStatus != c.b.FailStatus || b.FailRatio != c.b.FailRatio {
		c.calls = 0
	}
	c.b = b
	if !b.Hang {
		close(c.release)
		c.release = make(chan struct{})
	}
}

// Close releases every hung call (they answer 503 draining) and makes later calls that would
// hang answer so at once. Call it when the service shuts down, so that a graceful shutdown
// does not wait for calls that were told never to finish.
func (c *Chaos) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.release)
	}
}

// decision is what one call does, decided under the lock.
type decision struct {
	hang    bool
	release <-chan struct{}
	closed  bool
	delay   time.Duration
	fail    int // 0 = do not fail
}

func (c *Chaos) decide() decision {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := decision{hang: c.b.Hang, release: c.release, closed: c.closed, delay: c.b.Delay}
	if d.hang {
		return d
	}
	if c.b.FailStatus != 0 && c.failThisCall() {
		d.fail = c.b.FailStatus
	}
	return d
}

// failThisCall spreads failures evenly: call n fails when floor((n+1)·ratio) > floor(n·ratio).
func (c *Chaos) failThisCall() bool {
	r := c.b.FailRatio
	switch {
	case r <= 0:
		return false
	case r >= 1:
		return true
	}
	n := float64(c.calls)
	c.calls++
	return math.Floor((n+1)*r) > math.Floor(n*r)
}

// Wrap returns next under the current behaviour: a hung call waits until its context ends
// (the caller gave up or its levee-timeout-ms deadline passed), a reset or Close; a delayed
// call waits first; a failed call is answered with the failure status and
// {"error": "failing on purpose", "served_by": Service}.
func (c *Chaos) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		var d decision
		for {
			d = c.decide()
			if d.closed && d.hang {
				writeDraining(w, r)
				return
			}
			if !d.hang {
				break
			}
			if c.cfg.OnHang != nil {
				c.cfg.OnHang(r)
			}
			select {
			case <-ctx.Done():
				writeGaveUp(w, r, ctx.Err())
				return
			case <-d.release: // reset, hang turned off, or Close: decide again
			}
		}
		if d.delay > 0 {
			t := time.NewTimer(d.delay)
			select {
			case <-ctx.Done():
				t.Stop()
				writeGaveUp(w, r, ctx.Err())
				return
			case <-t.C:
			}
		}
		if d.fail != 0 {
			writeJSON(w, d.fail, map[string]string{"error": "failing on purpose", "served_by": c.cfg.Service})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeGaveUp answers a call whose context ended while it waited: deadline_exceeded when its
// deadline passed; nothing useful can reach a caller that went away, so that gets nothing.
func writeGaveUp(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.DeadlineExceeded) {
		levee.WriteProblem(w, levee.NewProblem(levee.CodeDeadlineExceeded, "", 0, levhttp.TraceID(r.Header)))
	}
}

func writeDraining(w http.ResponseWriter, r *http.Request) {
	levee.WriteProblem(w, levee.NewProblem(levee.CodeDraining, "", 0, levhttp.TraceID(r.Header)))
}

// Controls returns the handler of POST /control/{fail,delay,hang,reset}; mount it at
// "/control/". Bad parameters are answered 400 with {"error": what is wrong and how to fix
// it}; the behaviour is then left as it was.
func (c *Chaos) Controls() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/control/")
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("use POST /control/%s", name))
			return
		}
		q := r.URL.Query()
		b := c.Behaviour()
		switch name {
		case "fail":
			status, err := intParam(q.Get("status"), "status", 503, 400, 599, "an HTTP error status from 400 to 599, e.g. status=503")
			if err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			ratio, err := ratioParam(q.Get("ratio"))
			if err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			b.FailStatus, b.FailRatio = status, ratio
		case "delay":
			ms, err := intParam(q.Get("ms"), "ms", 0, 0, int(MaxDelay/time.Millisecond), "whole milliseconds from 0 to 600000, e.g. ms=200")
			if err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			b.Delay = time.Duration(ms) * time.Millisecond
		case "hang":
			on, err := boolParam(q.Get("on"))
			if err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			b.Hang = on
		case "reset":
			b = Behaviour{}
		default:
			writeError(w, http.StatusNotFound, fmt.Sprintf("unknown control %q: use fail, delay, hang or reset", name))
			return
		}
		c.Set(b)
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "behaviour": b})
	})
}

func intParam(v, name string, def, lo, hi int, want string) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s is %q: use %s", name, v, want)
	}
	return n, nil
}

func ratioParam(v string) (float64, error) {
	if v == "" {
		return 1, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f >= 0 && f <= 1) {
		return 0, fmt.Errorf("ratio is %q: use the fraction of calls to fail, from 0 to 1, e.g. ratio=0.5", v)
	}
	return f, nil
}

func boolParam(v string) (bool, error) {
	switch v {
	case "", "true", "1", "on":
		return true, nil
	case "false", "0", "off":
		return false, nil
	}
	return false, fmt.Errorf("on is %q: use on=true to hang or on=false to stop hanging", v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"cannot encode the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
