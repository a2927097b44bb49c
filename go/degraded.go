package levee

import (
	"net/http"
	"strconv"
	"strings"
)

// DegradedKind says which fallback produced a degraded answer (SPEC §7): the token before
// the ";" of a levee-degraded value, and the kind label of levee_fallbacks_total.
type DegradedKind uint8

// The fallback kinds, as levee-http's DegradedKind.
const (
	DegradedStale  DegradedKind = iota + 1 // the last good response, served by stale_if_error
	DegradedStatic                         // the route's static fallback
)

// String returns the header token: "stale" or "static".
func (k DegradedKind) String() string {
	switch k {
	case DegradedStale:
		return "stale"
	case DegradedStatic:
		return "static"
	}
	return "degraded_kind(" + strconv.Itoa(int(k)) + ")"
}

// DegradedValue returns the levee-degraded value for a fallback of kind served because of
// reason: "<kind>; reason=<code>", byte for byte what levee-http's degraded_value writes.
func DegradedValue(kind DegradedKind, reason Code) string {
	return kind.String() + "; reason=" + reason.String()
}

// ParseDegraded reads one levee-degraded value back, exactly as levee-http's parse_degraded
// does: "<kind>; reason=<code>" with optional spaces around ";" and "="; false for anything
// else (an unknown kind or code, another parameter name, a missing part). It reads one value:
// for a response that may carry several, use DegradedValues.
func ParseDegraded(value string) (DegradedKind, Code, bool) {
	kindText, param, ok := strings.Cut(value, ";")
	if !ok {
		return 0, 0, false
	}
	var kind DegradedKind
	switch strings.TrimSpace(kindText) {
	case "stale":
		kind = DegradedStale
	case "static":
		kind = DegradedStatic
	default:
		return 0, 0, false
	}
	name, codeText, ok := strings.Cut(param, "=")
	if !ok || strings.TrimSpace(name) != "reason" {
		return 0, 0, false
	}
	code, ok := ParseCode(strings.TrimSpace(codeText))
	if !ok {
		return 0, 0, false
	}
	return kind, code, true
}

// Degraded is one parsed levee-degraded value.
type Degraded struct {
	Kind   DegradedKind
	Reason Code
}

// String returns the header value (DegradedValue).
func (d Degraded) String() string { return DegradedValue(d.Kind, d.Reason) }

// AddDegraded adds a levee-degraded value to h. A response assembled from several parts adds
// one per degraded part; each is its own field line, as levee-http writes them.
func AddDegraded(h http.Header, kind DegradedKind, reason Code) {
	h.Add(HeaderDegraded, DegradedValue(kind, reason))
}

// DegradedValues returns every levee-degraded value of h, in order: every field line, each
// split on "," as well (an intermediary may have joined the lines into one list, RFC 9110
// §5.3). Values ParseDegraded does not accept are skipped; nil when there is none.
func DegradedValues(h http.Header) []Degraded {
	var out []Degraded
	for _, line := range h.Values(HeaderDegraded) {
		for _, item := range strings.Split(line, ",") {
			if kind, code, ok := ParseDegraded(item); ok {
				out = append(out, Degraded{Kind: kind, Reason: code})
			}
		}
	}
	return out
}
