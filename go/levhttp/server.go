// Package levhttp is Levee's net/http middleware: a client http.RoundTripper (Transport) that
// guards outbound calls with a breaker per endpoint key, a bulkhead, retries with a budget and
// deadline propagation, and a server http.Handler (Handler) that maps levee-timeout-ms,
// grpc-timeout and levee-criticality into the request's context.
//
// Errors are answered with the SPEC §7 problem+json envelope: malformed Levee headers are 400
// bad_request, an already spent deadline is 504 deadline_exceeded.
package levhttp

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/deadline"
)

// ServerOptions configures Handler. The zero value reads the Levee headers and sets no route
// timeout.
type ServerOptions struct {
	// Service names this service in error envelopes ("The request to <Service> was
	// malformed."). Empty: the detail says "the service" and the upstream field is omitted,
	// as levee-http does for requests not routed yet.
	Service string
	// Timeout is the route's timeout: the request's deadline is the shorter of it and the
	// inbound remaining time. 0 = none.
	Timeout time.Duration
	// Now reads the wall clock (default time.Now); tests set it to pin deadlines.
	Now func() time.Time
	// OnReject, if set, is called with every request the middleware answers itself.
	OnReject func(r *http.Request, err error)
}

// Handler returns next wrapped in Levee's server middleware:
//
//   - levee-timeout-ms and grpc-timeout become the request context's deadline (the shorter of
//     them and opts.Timeout); a malformed value is answered 400 bad_request, a deadline
//     already spent 504 deadline_exceeded, both as problem+json, before next runs;
//   - levee-criticality becomes the context's criticality (levee.CriticalityFrom); a value
//     that is not critical, standard or sheddable is answered 400 bad_request.
func Handler(next http.Handler, opts ServerOptions) http.Handler {
	service := opts.Service
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trace := TraceID(r.Header)
		reject := func(err error, code levee.Code) {
			if opts.OnReject != nil {
				opts.OnReject(r, err)
			}
			levee.WriteProblem(w, levee.NewProblem(code, service, 0, trace))
		}
		inbound, ok, err := deadline.FromHeader(r.Header)
		if err != nil {
			reject(err, levee.CodeBadRequest)
			return
		}
		var route, in *time.Duration
		if opts.Timeout > 0 {
			route = &opts.Timeout
		}
		if ok {
			in = &inbound
		}
		ctx := r.Context()
		if v := r.Header.Get(levee.HeaderCriticality); v != "" {
			c, err := levee.ParseCriticality(v)
			if err != nil {
				reject(&levee.Error{Code: levee.CodeBadRequest, Upstream: service, Reason: "criticality", Err: err}, levee.CodeBadRequest)
				return
			}
			ctx = levee.WithCriticality(ctx, c)
		}
		if d := deadline.Effective(route, in); d != nil {
			start := now()
			if *d == 0 {
				reject(&levee.Error{Code: levee.CodeDeadlineExceeded, Upstream: service}, levee.CodeDeadlineExceeded)
				return
			}
			var cancel context.CancelFunc
			ctx, cancel = deadline.WithRemaining(ctx, start, *d)
			defer cancel()
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// TraceID returns the trace id of a W3C traceparent header (version-traceid-parentid-flags),
// or "" when there is none or it is malformed.
func TraceID(h http.Header) string {
	parts := strings.Split(h.Get(levee.HeaderTraceparent), "-")
	if len(parts) < 4 || len(parts[0]) != 2 || len(parts[1]) != 32 {
		return ""
	}
	id := parts[1]
	zero := true
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return ""
		}
		zero = zero && c == '0'
	}
	if zero {
		return ""
	}
	return id
}
