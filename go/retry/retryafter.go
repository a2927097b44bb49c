package retry

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxDeltaSeconds is the largest delta-seconds Retry-After honoured (2^31 s, RFC 9111 §1.2.2).
const MaxDeltaSeconds = 1 << 31

// ParseRetryAfter reads an upstream's Retry-After (RFC 9110 §10.2.3; SPEC §4) exactly as
// levee-core does; nowUnix is the current wall-clock time in whole seconds since the Unix
// epoch (only HTTP-dates use it). ok is false when the value is malformed: a bad Retry-After
// never fails a call.
//
//   - Leading and trailing spaces and tabs are ignored.
//   - delta-seconds: one or more ASCII digits, nothing else; values above 2^31 s count as 2^31.
//   - HTTP-date: IMF-fixdate, RFC 850 (two-digit year: 00-69 = 2000-2069, 70-99 = 1970-1999)
//     or asctime, a real calendar date from 1970 to 9999 whose weekday matches. The result is
//     date − now in whole seconds, or zero when the date is not after now.
//
// Go's time.Duration holds about 292 years, so a date further than that from nowUnix is
// capped at the longest time.Duration (levee-core's Duration holds it exactly).
func ParseRetryAfter(value string, nowUnix uint64) (time.Duration, bool) {
	text := strings.Trim(value, " \t")
	if text == "" {
		return 0, false
	}
	allDigits := true
	for i := 0; i < len(text); i++ {
		if text[i] < '0' || text[i] > '9' {
			allDigits = false
			break
		}
	}
	if allDigits {
		seconds, err := strconv.ParseUint(text, 10, 64)
		if err != nil {
			seconds = math.MaxUint64
		}
		return time.Duration(min(seconds, MaxDeltaSeconds)) * time.Second, true
	}
	at, ok := parseHTTPDate(text)
	if !ok {
		return 0, false
	}
	if at <= nowUnix {
		return 0, true
	}
	secs := at - nowUnix
	if secs > uint64(math.MaxInt64/int64(time.Second)) {
		return time.Duration(math.MaxInt64), true
	}
	return time.Duration(secs) * time.Second, true
}

// parseHTTPDate parses the three HTTP-date formats as the Rust httpdate crate (1.0) does and
// returns seconds since the Unix epoch.
func parseHTTPDate(s string) (uint64, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return 0, false
		}
	}
	s = strings.TrimFunc(s, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\v' || r == '\f' || r == '\r'
	})
	d, ok := parseIMFFixdate(s)
	if !ok {
		d, ok = parseRFC850(s)
	}
	if !ok {
		d, ok = parseAsctime(s)
	}
	if !ok || !d.valid() {
		return 0, false
	}
	return d.unix(), true
}

type httpDate struct {
	sec, min, hour, day, mon int
	year                     int
	wday                     int // 1 = Monday … 7 = Sunday
}

func (d httpDate) valid() bool {
	if !(d.sec < 60 && d.min < 60 && d.hour < 24 && d.day > 0 && d.day < 32 && d.mon > 0 && d.mon <= 12 &&
		d.year >= 1970 && d.year <= 9999) {
		return false
	}
	t := time.Date(d.year, time.Month(d.mon), d.day, d.hour, d.min, d.sec, 0, time.UTC)
	wday := int(t.Weekday())
	if wday == 0 {
		wday = 7
	}
	return t.Day() == d.day && int(t.Month()) == d.mon && t.Year() == d.year && wday == d.wday
}

func (d httpDate) unix() uint64 {
	return uint64(time.Date(d.year, time.Month(d.mon), d.day, d.hour, d.min, d.sec, 0, time.UTC).Unix())
}

func toint1(b byte) (int, bool) {
	if b >= '0' && b <= '9' {
		return int(b - '0'), true
	}
	return 0, false
}

func toint2(s string) (int, bool) {
	h, ok1 := toint1(s[0])
	l, ok2 := toint1(s[1])
	return h*10 + l, ok1 && ok2
}

func toint4(s string) (int, bool) {
	a, ok1 := toint2(s[0:2])
	b, ok2 := toint2(s[2:4])
	return a*100 + b, ok1 && ok2
}

func index(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i + 1
		}
	}
	return 0
}

var months = []string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
var days = []string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
var longDays = []string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}

// Sun, 06 Nov 1994 08:49:37 GMT
func parseIMFFixdate(s string) (httpDate, bool) {
	var d httpDate
	if len(s) != 29 || s[25:] != " GMT" || s[16] != ' ' || s[19] != ':' || s[22] != ':' {
		return d, false
	}
	var ok [6]bool
	d.sec, ok[0] = toint2(s[23:25])
	d.min, ok[1] = toint2(s[20:22])
	d.hour, ok[2] = toint2(s[17:19])
	d.day, ok[3] = toint2(s[5:7])
	if s[7] != ' ' || s[11] != ' ' {
		return d, false
	}
	d.mon = index(months, s[8:11])
	d.year, ok[4] = toint4(s[12:16])
	if s[3:5] != ", " {
		return d, false
	}
	d.wday = index(days, s[0:3])
	ok[5] = true
	return d, ok[0] && ok[1] && ok[2] && ok[3] && ok[4] && d.mon != 0 && d.wday != 0
}

// Sunday, 06-Nov-94 08:49:37 GMT
func parseRFC850(s string) (httpDate, bool) {
	var d httpDate
	if len(s) < 23 {
		return d, false
	}
	rest := ""
	for i, name := range longDays {
		if strings.HasPrefix(s, name+", ") {
			d.wday, rest = i+1, s[len(name)+2:]
			break
		}
	}
	if d.wday == 0 {
		return d, false
	}
	s = rest
	if len(s) != 22 || s[12] != ':' || s[15] != ':' || s[18:22] != " GMT" {
		return d, false
	}
	year, ok := toint2(s[7:9])
	if !ok {
		return d, false
	}
	if year < 70 {
		year += 2000
	} else {
		year += 1900
	}
	d.year = year
	var oks [4]bool
	d.sec, oks[0] = toint2(s[16:18])
	d.min, oks[1] = toint2(s[13:15])
	d.hour, oks[2] = toint2(s[10:12])
	d.day, oks[3] = toint2(s[0:2])
	if s[2] != '-' || s[6] != '-' {
		return d, false
	}
	d.mon = index(months, s[3:6])
	return d, oks[0] && oks[1] && oks[2] && oks[3] && d.mon != 0
}

// Sun Nov  6 08:49:37 1994
func parseAsctime(s string) (httpDate, bool) {
	var d httpDate
	if len(s) != 24 || s[10] != ' ' || s[13] != ':' || s[16] != ':' || s[19] != ' ' {
		return d, false
	}
	var oks [5]bool
	d.sec, oks[0] = toint2(s[17:19])
	d.min, oks[1] = toint2(s[14:16])
	d.hour, oks[2] = toint2(s[11:13])
	if s[8] == ' ' {
		d.day, oks[3] = toint1(s[9])
	} else {
		d.day, oks[3] = toint2(s[8:10])
	}
	if s[7] != ' ' || s[3] != ' ' {
		return d, false
	}
	d.mon = index(months, s[4:7])
	d.year, oks[4] = toint4(s[20:24])
	d.wday = index(days, s[0:3])
	return d, oks[0] && oks[1] && oks[2] && oks[3] && oks[4] && d.mon != 0 && d.wday != 0
}
