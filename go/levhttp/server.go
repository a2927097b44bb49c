// Package levhttp is Levee's net/http middleware: a client http.RoundTripper (Transport) that
// guards outbound calls with a breaker per endpoint key, a bulkhead, retries with a budget,
// deadline and trace propagation, and a server http.Handler (Handler) that maps
// levee-timeout-ms, grpc-timeout, levee-criticality and traceparent into the request's
// context and, with a bulkhead, admits requests by criticality.
//
// Errors are answered with the SPEC §7 problem+json envelope: malformed Levee headers are 400
// bad_request, an already spent deadline is 504 deadline_exceeded, a full bulkhead is 503
// bulkhead_full with Retry-After. Every envelope carries the request's trace id.
package levhttp

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/bulkhead"
	"github.com/levee-dev/levee/go/deadline"
)

// ServerOptions configures Handler. The zero value reads the Levee headers, continues or
// starts the trace, sets no route timeout and admits every request.
type ServerOptions struct {
	// Service names this service in error envelopes ("The request to <Service> was
	// malformed."). Empty: the detail says "the service" and the upstream field is omitted,
	// as levee-http does for requests not routed yet.
	Service string
	// Timeout is the route's timeout: the request's deadline is the shorter of it and the
	// inbound remaining time. 0 = none.
	Timeout time.Duration
	// Bulkhead, when set, admits each request by its criticality (levee-criticality, default
	// standard; SPEC §3) before next runs, and holds the slot until next returns; the outcome
	// recorded is the response status classified as SPEC §1 says (Cancelled when the client
	// went away before an answer). A refused request is answered 503 bulkhead_full; a
	// request whose client leaves while queued gets no answer. nil = none.
	Bulkhead *bulkhead.Bulkhead
	// BulkheadRetryAfter, when positive, is sent as the Retry-After of a bulkhead_full
	// answer. 0 = none, as the Rust proxy and tower layer answer: a full bulkhead knows no
	// time at which a slot will be free.
	BulkheadRetryAfter time.Duration
	// Observer receives the bulkhead's rejections and load (levprom.Metrics implements it);
	// nil = none.
	Observer levee.Observer
	// Now reads the wall clock (default time.Now); tests set it to pin deadlines.
	Now func() time.Time
	// OnReject, if set, is called with every request the middleware answers itself.
	OnReject func(r *http.Request, err error)
}

// Handler returns next wrapped in Levee's server middleware:
//
//   - traceparent and tracestate are continued under a new span (or a new trace starts when
//     they are absent or invalid, SPEC §11); the trace is in the context (TraceFrom,
//     TraceIDFrom), so a Transport called with the request's context propagates it, and every
//     envelope the middleware writes shows its trace id;
//   - levee-timeout-ms and grpc-timeout become the request context's deadline (the shorter of
//     them and opts.Timeout); a malformed value is answered 400 bad_request, a deadline
//     already spent 504 deadline_exceeded, both as problem+json, before next runs;
//   - levee-criticality becomes the context's criticality (levee.CriticalityFrom); a value
//     that is not critical, standard or sheddable is answered 400 bad_request;
//   - with opts.Bulkhead, the request waits for a slot of its class (see ServerOptions).
func Handler(next http.Handler, opts ServerOptions) http.Handler {
	service := opts.Service
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	obs := opts.Observer
	if obs == nil {
		obs = levee.NopObserver{}
	}
	retryAfter := max(opts.BulkheadRetryAfter, 0)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr := TraceFromHeader(r.Header)
		reject := func(err error, code levee.Code, retryAfter time.Duration) {
			if opts.OnReject != nil {
				opts.OnReject(r, err)
			}
			levee.WriteProblem(w, levee.NewProblem(code, service, retryAfter, tr.TraceID))
		}
		inbound, ok, err := deadline.FromHeader(r.Header)
		if err != nil {
			reject(err, levee.CodeBadRequest, 0)
			return
		}
		var route, in *time.Duration
		if opts.Timeout > 0 {
			route = &opts.Timeout
		}
		if ok {
			in = &inbound
		}
		client := r.Context()
		ctx := WithTrace(client, tr)
		if v := r.Header.Get(levee.HeaderCriticality); v != "" {
			c, err := levee.ParseCriticality(v)
			if err != nil {
				reject(&levee.Error{Code: levee.CodeBadRequest, Upstream: service, Reason: "criticality", Err: err}, levee.CodeBadRequest, 0)
				return
			}
			ctx = levee.WithCriticality(ctx, c)
		}
		if d := deadline.Effective(route, in); d != nil {
			start := now()
			if *d == 0 {
				reject(&levee.Error{Code: levee.CodeDeadlineExceeded, Upstream: service}, levee.CodeDeadlineExceeded, 0)
				return
			}
			var cancel context.CancelFunc
			ctx, cancel = deadline.WithRemaining(ctx, start, *d)
			defer cancel()
		}
		r = r.WithContext(ctx)
		if opts.Bulkhead == nil {
			next.ServeHTTP(w, r)
			return
		}
		pool := opts.Bulkhead
		done, err := pool.Allow(ctx)
		if err != nil {
			var le *levee.Error
			switch {
			case errors.As(err, &le):
				obs.BulkheadRejected(pool.Name(), levee.CriticalityFrom(ctx), le.Reason)
				reject(err, le.Code, retryAfter)
			case errors.Is(err, context.DeadlineExceeded) && client.Err() == nil:
				// The request's deadline ran out in the queue; its client is still there.
				reject(&levee.Error{Code: levee.CodeDeadlineExceeded, Upstream: service, Err: err}, levee.CodeDeadlineExceeded, 0)
			}
			// Otherwise the client went away while queued: there is nobody to answer.
			return
		}
		obs.BulkheadLoad(pool.Name(), int(pool.InFlight()), pool.QueueDepth())
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			outcome := levee.ClassifyStatus(sw.status, levee.StatusSet{})
			if !sw.wrote && ctx.Err() != nil {
				outcome = levee.OutcomeOf(ctx.Err())
			}
			done(outcome)
			obs.BulkheadLoad(pool.Name(), int(pool.InFlight()), pool.QueueDepth())
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status a handler answered with. It passes Flush on, and Unwrap
// lets http.ResponseController reach the other optional interfaces.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(status int) {
	if !w.wrote {
		w.status, w.wrote = status, true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	w.wrote = true
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap returns the wrapped writer (http.ResponseController).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
