package levhttp

import (
	"context"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net/http"

	"github.com/levee-dev/levee/go"
)

// W3C Trace Context (SPEC §11), with levee-http's trace.rs semantics:
//
//   - traceparent is version-traceid-parentid-flags in lowercase hex only (2, 32, 16 and 2
//     digits). Version 00 is exactly 55 characters; version ff is invalid; a higher version is
//     read as 00 for its first four fields, may be followed only by "-" and more, and is
//     written on as 00. A trace id or parent id of all zeros is invalid.
//   - An absent, invalid or repeated traceparent starts a new trace (sampled, flags 01), and
//     tracestate is then dropped: it belongs to the discarded trace. A bad header never fails
//     a request: tracing is best effort.
//   - A continued trace keeps its trace id, flags and tracestate; each hop sends a child
//     traceparent whose parent id is its own, new span id.

// Trace is the trace context of one request or outbound call.
type Trace struct {
	TraceID    string   // 32 lowercase hex digits: in traceparent, logs and the error envelope
	SpanID     string   // this hop's span (16 hex digits): the parent id sent on
	ParentID   string   // the caller's span when the trace was continued; "" for a new trace
	Flags      byte     // trace-flags as received, or 01 (sampled) for a new trace
	TraceState []string // the caller's tracestate field lines, kept only when continued
}

// Traceparent is a parsed traceparent header.
type Traceparent struct {
	Version  byte
	TraceID  string
	ParentID string
	Flags    byte
}

// The reasons ParseTraceparent gives, as levee-http's TraceParentError.
var (
	ErrTraceparentLength       = errors.New("traceparent has the wrong length")
	ErrTraceparentVersion      = errors.New("traceparent version is not valid")
	ErrTraceparentFormat       = errors.New("traceparent is not version-traceid-parentid-flags in lowercase hex")
	ErrTraceparentZeroTraceID  = errors.New("traceparent trace id is all zeros")
	ErrTraceparentZeroParentID = errors.New("traceparent parent id is all zeros")
)

const traceparentV00Len = 55

// ParseTraceparent parses a traceparent value strictly (see Trace).
func ParseTraceparent(v string) (Traceparent, error) {
	if len(v) < traceparentV00Len {
		return Traceparent{}, ErrTraceparentLength
	}
	version, ok := hexByte(v[0:2])
	if !ok || version == 0xff {
		return Traceparent{}, ErrTraceparentVersion
	}
	if len(v) > traceparentV00Len && (version == 0 || v[traceparentV00Len] != '-') {
		return Traceparent{}, ErrTraceparentLength
	}
	if v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return Traceparent{}, ErrTraceparentFormat
	}
	trace, parent := v[3:35], v[36:52]
	flags, ok := hexByte(v[53:55])
	if !ok || !lowerHex(trace) || !lowerHex(parent) {
		return Traceparent{}, ErrTraceparentFormat
	}
	if allZero(trace) {
		return Traceparent{}, ErrTraceparentZeroTraceID
	}
	if allZero(parent) {
		return Traceparent{}, ErrTraceparentZeroParentID
	}
	return Traceparent{Version: version, TraceID: trace, ParentID: parent, Flags: flags}, nil
}

// String returns the value as version 00, the version Levee writes.
func (t Traceparent) String() string {
	return "00-" + t.TraceID + "-" + t.ParentID + "-" + hex.EncodeToString([]byte{t.Flags})
}

// TraceFromHeader continues the caller's trace from h's traceparent and tracestate with a new
// span id, or starts a new trace when traceparent is absent, invalid or repeated.
func TraceFromHeader(h http.Header) Trace {
	values := h.Values(levee.HeaderTraceparent)
	if len(values) == 1 {
		if tp, err := ParseTraceparent(values[0]); err == nil {
			return Trace{
				TraceID:    tp.TraceID,
				SpanID:     newSpanID(),
				ParentID:   tp.ParentID,
				Flags:      tp.Flags,
				TraceState: append([]string(nil), h.Values(levee.HeaderTracestate)...),
			}
		}
	}
	return NewTrace()
}

// NewTrace starts a new trace, sampled, with no caller.
func NewTrace() Trace {
	return Trace{TraceID: newTraceID(), SpanID: newSpanID(), Flags: 0x01}
}

// Continued reports whether the caller's trace was continued.
func (t Trace) Continued() bool { return t.ParentID != "" }

// Child returns the traceparent for the next hop: the same trace and flags, this span as the
// parent.
func (t Trace) Child() Traceparent {
	return Traceparent{TraceID: t.TraceID, ParentID: t.SpanID, Flags: t.Flags}
}

// Inject writes the child traceparent, and the tracestate when continued, into h, replacing
// what h held.
func (t Trace) Inject(h http.Header) {
	h.Set(levee.HeaderTraceparent, t.Child().String())
	h.Del(levee.HeaderTracestate)
	for _, v := range t.TraceState {
		h.Add(levee.HeaderTracestate, v)
	}
}

type traceKey struct{}

// WithTrace returns a context carrying t: Transport continues it on outbound calls whose
// request has no traceparent of its own. Handler puts every request's trace there.
func WithTrace(ctx context.Context, t Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// TraceFrom returns the trace ctx carries (WithTrace, Handler), if any.
func TraceFrom(ctx context.Context) (Trace, bool) {
	t, ok := ctx.Value(traceKey{}).(Trace)
	return t, ok
}

// TraceIDFrom returns the trace id ctx carries, or "": what an error envelope written for the
// request shows (levee.WriteError(w, err, levhttp.TraceIDFrom(r.Context()))).
func TraceIDFrom(ctx context.Context) string {
	t, _ := TraceFrom(ctx)
	return t.TraceID
}

// TraceID returns the trace id of h's traceparent when it is valid (and not repeated), or ""
// (see ParseTraceparent).
func TraceID(h http.Header) string {
	values := h.Values(levee.HeaderTraceparent)
	if len(values) != 1 {
		return ""
	}
	tp, err := ParseTraceparent(values[0])
	if err != nil {
		return ""
	}
	return tp.TraceID
}

func newTraceID() string {
	for {
		var b [16]byte
		putUint64(b[:8], rand.Uint64())
		putUint64(b[8:], rand.Uint64())
		if b != [16]byte{} {
			return hex.EncodeToString(b[:])
		}
	}
}

func newSpanID() string {
	for {
		if v := rand.Uint64(); v != 0 {
			var b [8]byte
			putUint64(b[:], v)
			return hex.EncodeToString(b[:])
		}
	}
}

func putUint64(b []byte, v uint64) {
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

func nibble(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

func hexByte(s string) (byte, bool) {
	hi, ok1 := nibble(s[0])
	lo, ok2 := nibble(s[1])
	return hi<<4 | lo, ok1 && ok2
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if _, ok := nibble(s[i]); !ok {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
