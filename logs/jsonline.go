package logs

import (
	"bytes"
	"errors"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/berth-dev/berth/api"
)

// jsonEntry is one entry of the engine's json-file log:
//
//	{"log":"text\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}
//
// Log has no trailing "\n" when the engine split a longer line into
// several entries (every 16 KiB) or the process ended without one.
type jsonEntry struct {
	Log    []byte // aliases the line, or the scratch buffer when escaped
	Stream string
	Time   time.Time
}

var errBadEntry = errors.New("not a json-file log entry")

// decodeJSONLine decodes one line of a json-file log (without its "\n").
// It is written for this one shape because it runs for every line the
// node's containers print: it does not allocate unless the stream name is
// unusual, and text without escapes is not copied. Unescaped text goes to
// scratch, which it returns (grown) for the next call. Keys other than
// log, stream and time (attrs) are skipped; a missing time is an error.
func decodeJSONLine(b []byte, e *jsonEntry, scratch []byte) ([]byte, error) {
	*e = jsonEntry{}
	scratch = scratch[:0]
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return scratch, errBadEntry
	}
	i = skipSpace(b, i+1)
	var haveTime bool
	if i < len(b) && b[i] == '}' {
		return scratch, errBadEntry
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return scratch, errBadEntry
		}
		key, esc, j, ok := scanString(b, i)
		if !ok {
			return scratch, errBadEntry
		}
		if esc {
			var kb [16]byte
			k, ok := unescape(kb[:0], key)
			if !ok {
				return scratch, errBadEntry
			}
			key = k
		}
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return scratch, errBadEntry
		}
		i = skipSpace(b, i+1)
		switch string(key) {
		case "log", "stream", "time":
			if i >= len(b) || b[i] != '"' {
				return scratch, errBadEntry
			}
			s, esc, j, ok := scanString(b, i)
			if !ok {
				return scratch, errBadEntry
			}
			if esc {
				start := len(scratch)
				if scratch, ok = unescape(scratch, s); !ok {
					return scratch, errBadEntry
				}
				s = scratch[start:]
			}
			switch string(key) {
			case "log":
				e.Log = s
			case "stream":
				switch string(s) {
				case "stdout":
					e.Stream = api.StreamStdout
				case "stderr":
					e.Stream = api.StreamStderr
				default:
					e.Stream = string(s)
				}
			case "time":
				t, err := parseLogTime(s)
				if err != nil {
					return scratch, errBadEntry
				}
				e.Time, haveTime = t, true
			}
			i = j
		default:
			if i, ok = skipValue(b, i); !ok {
				return scratch, errBadEntry
			}
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return scratch, errBadEntry
		}
		if b[i] == '}' {
			i++
			break
		}
		if b[i] != ',' {
			return scratch, errBadEntry
		}
		i = skipSpace(b, i+1)
	}
	if skipSpace(b, i) != len(b) || !haveTime {
		return scratch, errBadEntry
	}
	return scratch, nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// scanString reads the JSON string starting at b[i] == '"': its raw
// content, whether that holds escapes, and the index after the closing
// quote.
func scanString(b []byte, i int) (s []byte, esc bool, next int, ok bool) {
	start := i + 1
	j := start
	for {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			return nil, false, 0, false
		}
		bs := bytes.IndexByte(b[j:j+q], '\\')
		if bs < 0 {
			return b[start : j+q], esc, j + q + 1, true
		}
		// An escape before the quote: step over it and look again.
		esc = true
		j += bs + 2
		if j > len(b) {
			return nil, false, 0, false
		}
	}
}

// unescape appends the decoded form of a JSON string's content to dst.
// Lone surrogates become U+FFFD, as encoding/json does.
func unescape(dst, s []byte) ([]byte, bool) {
	for len(s) > 0 {
		i := bytes.IndexByte(s, '\\')
		if i < 0 {
			return append(dst, s...), true
		}
		dst = append(dst, s[:i]...)
		s = s[i:]
		if len(s) < 2 {
			return dst, false
		}
		switch c := s[1]; c {
		case '"', '\\', '/':
			dst = append(dst, c)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(s[2:])
			if !ok {
				return dst, false
			}
			s = s[6:]
			if utf16.IsSurrogate(r) {
				if len(s) >= 6 && s[0] == '\\' && s[1] == 'u' {
					if r2, ok := hex4(s[2:]); ok {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							dst = utf8.AppendRune(dst, d)
							s = s[6:]
							continue
						}
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			return dst, false
		}
		s = s[2:]
	}
	return dst, true
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// skipValue steps over the JSON value at b[i] (a string, number, literal,
// object or array) without checking more than its nesting.
func skipValue(b []byte, i int) (int, bool) {
	depth := 0
	for i < len(b) {
		switch c := b[i]; c {
		case '"':
			_, _, j, ok := scanString(b, i)
			if !ok {
				return 0, false
			}
			i = j
		case '{', '[':
			depth++
			i++
		case '}', ']':
			if depth == 0 {
				return i, true
			}
			depth--
			i++
		case ',':
			if depth == 0 {
				return i, true
			}
			i++
		default:
			i++
		}
		if depth == 0 && i > 0 && (b[i-1] == '"' || b[i-1] == '}' || b[i-1] == ']') {
			return i, true
		}
	}
	return i, depth == 0
}

// parseLogTime parses the engine's RFC 3339 time in UTC
// ("2006-01-02T15:04:05.999999999Z") without allocating, and any other
// RFC 3339 form through time.Parse.
func parseLogTime(s []byte) (time.Time, error) {
	if n := len(s); n >= 20 && n <= 30 && s[n-1] == 'Z' && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' {
		y, ok1 := digits(s[0:4])
		mo, ok2 := digits(s[5:7])
		d, ok3 := digits(s[8:10])
		h, ok4 := digits(s[11:13])
		mi, ok5 := digits(s[14:16])
		sec, ok6 := digits(s[17:19])
		frac, ns, ok7 := 0, 0, true
		switch {
		case n == 20:
		case s[19] == '.' && n > 21:
			frac, ok7 = digits(s[20 : n-1])
			ns = frac
			for k := n - 21; k < 9; k++ {
				ns *= 10
			}
		default:
			ok7 = false
		}
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && mo >= 1 && mo <= 12 && d >= 1 && d <= 28 && h < 24 && mi < 60 && sec < 60 {
			return time.Date(y, time.Month(mo), d, h, mi, sec, ns, time.UTC), nil
		}
	}
	t, err := time.Parse(time.RFC3339Nano, string(s))
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
