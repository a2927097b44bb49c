package levee

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxProblemBody is the most ProblemFromResponse reads of a response body: an envelope is a
// few hundred bytes, and a large body is not one.
const MaxProblemBody = 64 << 10

// ProblemFromResponse reads a received SPEC §7 envelope back: when resp is
// application/problem+json and its body (at most MaxProblemBody bytes) is a JSON object, it
// returns the problem and true. The status is resp's when the body has none, and a
// Retry-After header (seconds or an HTTP date) fills RetryAfterS when the body has none. A
// problem that is not Levee's (no code, e.g. type about:blank) is returned too: check Code,
// or use Problem.AsError.
//
// resp.Body stays readable from the start whatever the result (what was read is put back in
// front of the rest), so a caller that gets false — or passes the answer on — still has the
// whole body; closing it closes the original.
func ProblemFromResponse(resp *http.Response) (*Problem, bool) {
	if resp == nil || resp.Body == nil || resp.Body == http.NoBody {
		return nil, false
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != ContentTypeProblem {
		return nil, false
	}
	// One byte more than the bound tells a body at the bound from a longer one.
	read, err := io.ReadAll(io.LimitReader(resp.Body, MaxProblemBody+1))
	resp.Body = &replayedBody{Reader: io.MultiReader(bytes.NewReader(read), resp.Body), closer: resp.Body}
	if err != nil || len(read) > MaxProblemBody {
		return nil, false
	}
	var p Problem
	if json.Unmarshal(read, &p) != nil || !bytes.HasPrefix(bytes.TrimSpace(read), []byte("{")) {
		return nil, false
	}
	if p.Status == 0 {
		p.Status = resp.StatusCode
	}
	if p.RetryAfterS <= 0 {
		p.RetryAfterS = 0
		if d, ok := parseRetryAfterHeader(resp.Header.Get(HeaderRetryAfter), time.Now()); ok {
			p.RetryAfterS = RetryAfterSeconds(d)
		}
	}
	return &p, true
}

// replayedBody is a body whose first bytes were read and put back.
type replayedBody struct {
	io.Reader
	closer io.Closer
}

func (b *replayedBody) Close() error { return b.closer.Close() }

// parseRetryAfterHeader reads Retry-After: delay-seconds or an HTTP date (a date in the past
// is 0). The retry package's ParseRetryAfter is the policy-side twin, on the SDK's clock.
func parseRetryAfterHeader(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(secs) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(at.Sub(now), 0), true
}

// RetryAfter returns retry_after_s as a duration; 0 when unknown.
func (p Problem) RetryAfter() time.Duration {
	if p.RetryAfterS <= 0 {
		return 0
	}
	return time.Duration(p.RetryAfterS) * time.Second
}

// AsError turns a received Levee envelope back into the *Error it stands for — its code, its
// upstream and its retry-after — so errors.Is(err, levee.ErrCircuitOpen) works on a refusal a
// sidecar or another Levee service sent. False when Code is not a SPEC §7 code (a problem
// that is not Levee's).
func (p Problem) AsError() (*Error, bool) {
	code, ok := ParseCode(p.Code)
	if !ok {
		return nil, false
	}
	return &Error{Code: code, Upstream: p.Upstream, Reason: p.Code, RetryAfter: p.RetryAfter()}, true
}
