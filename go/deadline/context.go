package deadline

import (
	"context"
	"net/http"
	"time"

	"github.com/levee-dev/levee/go"
)

// FromHeader reads the inbound remaining time from a request's levee-timeout-ms and
// grpc-timeout headers (see Inbound). ok is false when the caller sent neither.
func FromHeader(h http.Header) (remaining time.Duration, ok bool, err error) {
	var ms, grpc *string
	if v, present := h[http.CanonicalHeaderKey(levee.HeaderTimeoutMs)]; present && len(v) > 0 {
		ms = &v[0]
	}
	if v, present := h[http.CanonicalHeaderKey(levee.HeaderGRPCTimeout)]; present && len(v) > 0 {
		grpc = &v[0]
	}
	d, err := Inbound(ms, grpc)
	if err != nil || d == nil {
		return 0, false, err
	}
	return *d, true, nil
}

// Remaining returns the time left before ctx's deadline at now; ok is false when ctx has no
// deadline. A deadline in the past gives zero (the deadline is spent).
func Remaining(ctx context.Context, now time.Time) (time.Duration, bool) {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0, false
	}
	return max(dl.Sub(now), 0), true
}

// SetHeader writes ctx's remaining time at now into h as levee-timeout-ms (rounded down to
// whole milliseconds), and reports whether ctx had a deadline. A header already present is
// replaced: Levee writes what is left, less the time already spent.
func SetHeader(h http.Header, ctx context.Context, now time.Time) bool {
	remaining, ok := Remaining(ctx, now)
	if !ok {
		return false
	}
	h.Set(levee.HeaderTimeoutMs, FormatTimeoutMs(remaining))
	return true
}

// WithRemaining returns a context whose deadline is the shorter of ctx's own and now +
// remaining (the route timeout or the inbound header mapped onto context.Context).
func WithRemaining(ctx context.Context, now time.Time, remaining time.Duration) (context.Context, context.CancelFunc) {
	return context.WithDeadline(ctx, now.Add(min(max(remaining, 0), MaxRemaining)))
}
