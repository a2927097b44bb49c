package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
)

// The registry's wire types (api/registry.openapi.yaml), as far as this client reads or
// writes them.

type reportRequest struct {
	Service   string           `json:"service"`
	Language  string           `json:"language"`
	Instance  string           `json:"instance"`
	Endpoints []endpointReport `json:"endpoints"`
}

type endpointReport struct {
	Key     string   `json:"key"`
	Buckets []bucket `json:"buckets"`
}

// bucket is one second of one endpoint key's outcomes at this instance. Counts are deltas:
// the registry adds buckets of the same second.
type bucket struct {
	StartS       uint64 `json:"start_s"`
	Success      uint64 `json:"success,omitempty"`
	Failure      uint64 `json:"failure,omitempty"`
	Timeout      uint64 `json:"timeout,omitempty"`
	Slow         uint64 `json:"slow,omitempty"`
	Cancelled    uint64 `json:"cancelled,omitempty"`
	Rejected     uint64 `json:"rejected,omitempty"`
	Ignored      uint64 `json:"ignored,omitempty"`
	LatencySumMs uint64 `json:"latency_sum_ms,omitempty"`
}

func satAdd(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return ^uint64(0)
}

// add counts one outcome (the Rust client's ReportBucket::add).
func (b *bucket) add(o levee.Outcome, ms uint64, slow bool) {
	switch o {
	case levee.Success:
		b.Success++
	case levee.Failure:
		b.Failure++
	case levee.Timeout:
		b.Timeout++
	case levee.Cancelled:
		b.Cancelled++
	case levee.Rejected:
		b.Rejected++
	case levee.Ignored:
		b.Ignored++
	default:
		return
	}
	if o.IsCounted() {
		if slow {
			b.Slow++
		}
		b.LatencySumMs = satAdd(b.LatencySumMs, ms)
	}
}

// merge adds another bucket's counts (same second).
func (b *bucket) merge(o bucket) {
	b.Success = satAdd(b.Success, o.Success)
	b.Failure = satAdd(b.Failure, o.Failure)
	b.Timeout = satAdd(b.Timeout, o.Timeout)
	b.Slow = satAdd(b.Slow, o.Slow)
	b.Cancelled = satAdd(b.Cancelled, o.Cancelled)
	b.Rejected = satAdd(b.Rejected, o.Rejected)
	b.Ignored = satAdd(b.Ignored, o.Ignored)
	b.LatencySumMs = satAdd(b.LatencySumMs, o.LatencySumMs)
}

type reportResponse struct {
	Accepted   uint64 `json:"accepted"`
	Late       uint64 `json:"late"`
	NotCounted uint64 `json:"not_counted"`
}

type breakerWire struct {
	Key         string  `json:"key"`
	State       string  `json:"state"`
	Observe     bool    `json:"observe"`
	Override    *string `json:"override"`
	OpenUntilMs *uint64 `json:"open_until_ms"`
	Generation  uint64  `json:"generation"`
}

type toggleWire struct {
	State   string `json:"state"`
	Percent *int   `json:"percent,omitempty"`
	Version uint64 `json:"version"`
}

type degradationWire struct {
	Level int `json:"level"`
}

type policyWire struct {
	Key     string          `json:"key"`
	Version uint64          `json:"version"`
	Config  json.RawMessage `json:"config"`
}

// eventData is the data of a watch event (and, with Type empty, GET /v1/state): one struct
// for every type, whose fields do not collide.
type eventData struct {
	Type string `json:"type"`
	// snapshot (and GET /v1/state)
	EventID     uint64                 `json:"event_id"`
	Degraded    bool                   `json:"degraded"`
	Breakers    map[string]breakerWire `json:"breakers"`
	Toggles     map[string]toggleWire  `json:"toggles"`
	Degradation *degradationWire       `json:"degradation"`
	Policies    map[string]policyWire  `json:"policies"`
	// breaker
	Breaker *breakerWire `json:"breaker"`
	// toggle (Toggle is null when the toggle was deleted)
	Name   string      `json:"name"`
	Toggle *toggleWire `json:"toggle"`
	// policy
	Policy *policyWire `json:"policy"`
	// status
	BackendConnected *bool `json:"backend_connected"`
}

type leaseRequest struct {
	Instance string `json:"instance"`
	TTLMs    uint64 `json:"ttl_ms,omitempty"`
}

type leaseResponse struct {
	Granted      bool    `json:"granted"`
	Probe        bool    `json:"probe"`
	LeaseID      *string `json:"lease_id"`
	ExpiresAtMs  *uint64 `json:"expires_at_ms"`
	State        string  `json:"state"`
	RetryAfterMs *uint64 `json:"retry_after_ms"`
}

type completeRequest struct {
	Outcome    levee.Outcome `json:"outcome"`
	DurationMs uint64        `json:"duration_ms"`
}

// parseState reads a breaker state's wire spelling.
func parseState(s string) (breaker.State, bool) {
	for _, st := range breaker.States {
		if st.String() == s {
			return st, true
		}
	}
	return 0, false
}

// StatusError is a registry answer other than success: the HTTP status and the problem+json
// envelope's code and detail when it sent one. Only the client's own background work and
// Flush see these; nothing on a request path returns one.
type StatusError struct {
	Status int
	Code   string
	Detail string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("levee registry: HTTP %d", e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// transient reports whether retrying later may fix err: anything but an answer that says the
// request itself is wrong (4xx other than 429).
func transient(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status >= 500 || se.Status == http.StatusTooManyRequests
	}
	return true
}

// encodeSegment percent-encodes one path segment (everything but RFC 3986 unreserved
// characters), as the Rust client does, so endpoint keys such as "inventory/get" stay one
// segment.
func encodeSegment(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// newRequest builds a request to the registry with the bearer token.
func (c *Client) newRequest(ctx context.Context, method, path string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", userAgent)
	return req, nil
}

const userAgent = "levee-go-registry-client"

// maxAnswer bounds what is read of one answer (GET /v1/state of a large fleet included).
const maxAnswer = 64 << 20

// call sends a JSON request and decodes the JSON answer into out, within timeout (and ctx).
func (c *Client) call(ctx context.Context, timeout time.Duration, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return statusError(resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("levee registry: %s %s: unreadable answer: %w", method, path, err)
	}
	return nil
}

func statusError(status int, body []byte) *StatusError {
	e := &StatusError{Status: status}
	var p struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &p) == nil {
		e.Code, e.Detail = p.Code, p.Detail
	}
	return e
}
