package registry

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
)

// maxDenialHold bounds how long a lease denial (or an unanswered lease request) is remembered
// for its key, so that callers of a probing endpoint do not each ask the registry while every
// probe slot is taken: the proxy's DENIAL_MEMORY. A change of the fleet breaker (a watch
// event) forgets it at once.
const maxDenialHold = time.Second

// Lease is the answer to a probe lease request that let the call go. When Probe is true it is
// one of the fleet's half-open probe permits (at most half_open.permitted_calls are out
// fleet-wide): send one call and Complete the lease with its outcome. When Probe is false the
// fleet does not restrict calls (or the registry could not be asked): the call goes as a
// normal one, and Complete does nothing. A probe lease never completed lapses after LeaseTTL
// and counts as a cancelled probe.
type Lease struct {
	c       *Client
	key     string
	id      string
	probe   bool
	start   levee.Timestamp
	expires time.Time
	done    atomic.Bool
}

// Probe reports whether the call is a fleet probe.
func (l *Lease) Probe() bool { return l != nil && l.probe }

// ID returns the lease id ("" unless Probe).
func (l *Lease) ID() string {
	if l == nil {
		return ""
	}
	return l.id
}

// Expires returns when the lease lapses (zero unless Probe).
func (l *Lease) Expires() time.Time {
	if l == nil {
		return time.Time{}
	}
	return l.expires
}

// Complete reports the probe's outcome, with the time since the lease was granted as its
// duration. It never waits (a background goroutine sends it) and acts only once; on a lease
// that is not a probe it does nothing.
func (l *Lease) Complete(outcome levee.Outcome) {
	if !l.Probe() || !l.done.CompareAndSwap(false, true) {
		return
	}
	d := l.c.clock.Now().Since(l.start)
	comp := completion{key: l.key, id: l.id, req: completeRequest{Outcome: outcome, DurationMs: uint64(d / time.Millisecond)}}
	select {
	case l.c.completions <- comp:
	default:
		// The registry is far behind: the lease lapses on its own.
		l.c.logDebug("probe lease completion queue full; the lease will lapse", "key", l.key)
	}
}

type completion struct {
	key string
	id  string
	req completeRequest
}

// AcquireLease asks the registry for a fleet probe lease for endpoint key, waiting at most
// LeaseTimeout (and ctx). The answers:
//   - a Lease with Probe() true: send the call as a fleet probe, then Complete the lease;
//   - a Lease with Probe() false: the fleet does not restrict calls to key now, or the
//     registry could not be asked and has no fresh restriction on key (fail-static: the
//     local breaker decides alone);
//   - a circuit_open *levee.Error (errors.Is(err, levee.ErrCircuitOpen)), with RetryAfter
//     when known: the fleet is probing key and every probe slot is taken, or the registry
//     did not answer while its fresh last word restricts key (as the proxy does);
//   - ctx's error, when ctx ends first.
func (c *Client) AcquireLease(ctx context.Context, key string) (*Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if retry, ok := c.denied(key); ok {
		return nil, fleetRejection(key, retry)
	}
	var r leaseResponse
	req := leaseRequest{Instance: c.instance, TTLMs: uint64(c.cfg.LeaseTTL / time.Millisecond)}
	err := c.call(ctx, c.cfg.LeaseTimeout, http.MethodPost, "/v1/breakers/"+encodeSegment(key)+"/leases", req, &r)
	switch {
	case err != nil:
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		if b, ok := c.restricting(key); ok && b.state != breaker.Closed && b.state != breaker.Disabled {
			// No answer: the fleet's last word (it is probing key) holds until it goes stale.
			c.logDebug("registry probe lease unanswered; the fleet's last state holds", "key", key, "error", err)
			c.rememberDenial(key, 0)
			return nil, fleetRejection(key, 0)
		}
		c.logDebug("registry probe lease unavailable; the local breaker decides", "key", key, "error", err)
		return &Lease{key: key}, nil
	case r.Granted && r.Probe && r.LeaseID != nil:
		l := &Lease{c: c, key: key, id: *r.LeaseID, probe: true, start: c.clock.Now()}
		if r.ExpiresAtMs != nil {
			l.expires = time.UnixMilli(int64(*r.ExpiresAtMs))
		}
		return l, nil
	case r.Granted:
		return &Lease{key: key}, nil
	}
	var retry time.Duration
	if r.RetryAfterMs != nil {
		retry = time.Duration(*r.RetryAfterMs) * time.Millisecond
	}
	c.rememberDenial(key, retry)
	return nil, fleetRejection(key, retry)
}

func (c *Client) rememberDenial(key string, retry time.Duration) {
	hold := maxDenialHold
	if retry > 0 {
		hold = min(retry, maxDenialHold)
	}
	c.denialsMu.Lock()
	c.denials[key] = c.clock.Now().Add(hold)
	c.denialsMu.Unlock()
}

// denied reports whether key's probe slots were all taken moments ago, with the time left.
func (c *Client) denied(key string) (time.Duration, bool) {
	c.denialsMu.Lock()
	defer c.denialsMu.Unlock()
	until, ok := c.denials[key]
	if !ok {
		return 0, false
	}
	now := c.clock.Now()
	if now >= until {
		delete(c.denials, key)
		return 0, false
	}
	return until.Since(now), true
}

func (c *Client) forgetDenial(key string) {
	c.denialsMu.Lock()
	delete(c.denials, key)
	c.denialsMu.Unlock()
}

// completeLoop sends lease completions.
func (c *Client) completeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case comp := <-c.completions:
			c.sendCompletion(ctx, comp)
		}
	}
}

func (c *Client) sendCompletion(ctx context.Context, comp completion) {
	path := "/v1/breakers/" + encodeSegment(comp.key) + "/leases/" + encodeSegment(comp.id) + "/complete"
	if err := c.call(ctx, c.cfg.RequestTimeout, http.MethodPost, path, comp.req, nil); err != nil {
		// The lease lapses at its TTL and counts as cancelled: nothing else to do.
		c.logDebug("probe lease completion not delivered", "key", comp.key, "error", err)
	}
}
