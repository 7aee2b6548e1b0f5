package logs

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/berth-dev/berth/api"
)

func TestDecodeJSONLine(t *testing.T) {
	t.Parallel()
	ts := time.Date(2024, 5, 1, 10, 0, 0, 123456789, time.UTC)
	for _, c := range []struct {
		desc   string
		in     string
		log    string
		stream string
		time   time.Time
		bad    bool
	}{
		{desc: "plain", in: `{"log":"hello\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}`, log: "hello\n", stream: api.StreamStdout, time: ts},
		{desc: "stderr, short fraction", in: `{"log":"x\n","stream":"stderr","time":"2024-05-01T10:00:00.1Z"}`, log: "x\n", stream: api.StreamStderr, time: ts.Truncate(100 * time.Millisecond)},
		{desc: "no fraction", in: `{"log":"x\n","stream":"stdout","time":"2024-05-31T23:59:59Z"}`, log: "x\n", stream: api.StreamStdout, time: time.Date(2024, 5, 31, 23, 59, 59, 0, time.UTC)},
		{desc: "offset time", in: `{"log":"x","stream":"stdout","time":"2024-05-01T12:00:00.123456789+02:00"}`, log: "x", stream: api.StreamStdout, time: ts},
		{desc: "escapes", in: `{"log":"a\"b\\c\/d\te\r\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}`, log: "a\"b\\c/d\te\r\n", stream: api.StreamStdout, time: ts},
		{desc: "control and html escapes", in: `{"log":"\u003cb\u003e \u0026 \b\f\u0000","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}`, log: "<b> & \b\f\x00", stream: api.StreamStdout, time: ts},
		{desc: "unicode raw and escaped", in: `{"log":"é – \u00e9 \ud83d\ude00 ✓\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}`, log: "é – é 😀 ✓\n", stream: api.StreamStdout, time: ts},
		{desc: "lone surrogate", in: `{"log":"\ud83d!","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}`, log: "\uFFFD!", stream: api.StreamStdout, time: ts},
		{desc: "partial entry (no newline)", in: `{"log":"aaaa","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}`, log: "aaaa", stream: api.StreamStdout, time: ts},
		{desc: "attrs and spaces", in: ` { "log" : "x\n" , "stream":"stdout", "attrs":{"a":"}","b":[1,{"c":"\""}]}, "time":"2024-05-01T10:00:00.123456789Z" } `, log: "x\n", stream: api.StreamStdout, time: ts},
		{desc: "CRLF at the end of the entry", in: "{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":\"2024-05-01T10:00:00.123456789Z\"}\r", log: "x\n", stream: api.StreamStdout, time: ts},
		{desc: "leap day", in: `{"log":"","stream":"stdout","time":"2024-02-29T00:00:00Z"}`, log: "", stream: api.StreamStdout, time: time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		{desc: "no time", in: `{"log":"x\n","stream":"stdout"}`, bad: true},
		{desc: "bad time", in: `{"log":"x\n","stream":"stdout","time":"2024-02-30T00:00:00Z"}`, bad: true},
		{desc: "bad escape", in: `{"log":"\x","stream":"stdout","time":"2024-05-01T10:00:00Z"}`, bad: true},
		{desc: "short unicode escape", in: `{"log":"\u12","stream":"stdout","time":"2024-05-01T10:00:00Z"}`, bad: true},
		{desc: "unterminated", in: `{"log":"x\n","stream":"stdout","time":"2024-05-01T10:00:00Z"`, bad: true},
		{desc: "torn string", in: `{"log":"x\`, bad: true},
		{desc: "trailing garbage", in: `{"log":"x","stream":"stdout","time":"2024-05-01T10:00:00Z"}x`, bad: true},
		{desc: "empty object", in: `{}`, bad: true},
		{desc: "not an object", in: `"log"`, bad: true},
		{desc: "empty", in: ``, bad: true},
	} {
		t.Run(c.desc, func(t *testing.T) {
			var e jsonEntry
			_, err := decodeJSONLine([]byte(c.in), &e, nil)
			if c.bad {
				if err == nil {
					t.Fatalf("decoded %+v, want an error", e)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(e.Log) != c.log || e.Stream != c.stream || !e.Time.Equal(c.time) {
				t.Fatalf("decoded log %q stream %q time %s, want %q %q %s", e.Log, e.Stream, e.Time, c.log, c.stream, c.time)
			}
		})
	}
}

// The decoder reuses its scratch buffer: a decoded entry is valid until
// the next call with the same buffer.
func TestDecodeJSONLineReusesScratch(t *testing.T) {
	t.Parallel()
	var e jsonEntry
	scratch, err := decodeJSONLine([]byte(`{"log":"a\tb","stream":"stdout","time":"2024-05-01T10:00:00Z"}`), &e, nil)
	if err != nil || string(e.Log) != "a\tb" {
		t.Fatalf("%q %v", e.Log, err)
	}
	if _, err := decodeJSONLine([]byte(`{"log":"c\nd","stream":"stdout","time":"2024-05-01T10:00:00Z"}`), &e, scratch); err != nil || string(e.Log) != "c\nd" {
		t.Fatalf("%q %v", e.Log, err)
	}
}

type engineEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

func FuzzDecodeJSONLine(f *testing.F) {
	for _, s := range []string{
		`{"log":"hello\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}`,
		`{"log":"\u003c\ud83d\ude00\ud83d","stream":"stderr","attrs":{"k":["v"]},"time":"2024-05-01T10:00:00Z"}`,
		`{"log":"a\"\\b","stream":"x","time":"2024-05-01T12:00:00+02:00"}`,
		`{"log":"x\`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e jsonEntry
		if _, err := decodeJSONLine(b, &e, nil); err != nil {
			return
		}
		// What it accepts, encoding/json reads alike (where the input is
		// valid JSON in UTF-8, as the engine writes it).
		var want engineEntry
		if !utf8.Valid(b) || json.Unmarshal(b, &want) != nil || bytes.Count(b, []byte(`"log"`)) != 1 || bytes.Count(b, []byte(`"time"`)) != 1 {
			return
		}
		if string(e.Log) != want.Log || !e.Time.Equal(want.Time) {
			t.Fatalf("decoded log %q time %s, encoding/json %q %s", e.Log, e.Time, want.Log, want.Time)
		}
	})
}

var benchLine = []byte(`{"log":"GET /items/123 200 12ms user=42 the quick brown fox jumps over the lazy dog\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}`)

// The hand-written decoder against encoding/json on a typical line (the
// figures are in docs/ARCHITECTURE.md).
func BenchmarkDecodeJSONLine(b *testing.B) {
	b.Run("hand-written", func(b *testing.B) {
		var e jsonEntry
		var scratch []byte
		b.ReportAllocs()
		for b.Loop() {
			scratch, _ = decodeJSONLine(benchLine, &e, scratch)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var e engineEntry
			_ = json.Unmarshal(benchLine, &e)
		}
	})
}

func TestParseLogTimeMatchesTimeParse(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"2024-05-01T10:00:00Z", "2024-05-01T10:00:00.5Z", "2024-12-31T23:59:59.999999999Z", "2023-02-28T00:00:00.000000001Z", "1999-01-01T00:00:00.12Z"} {
		got, err := parseLogTime([]byte(s))
		want, werr := time.Parse(time.RFC3339Nano, s)
		if err != nil || werr != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("%s: %s %v, want %s %v", s, got, err, want, werr)
		}
	}
	for _, s := range []string{"2024-13-01T10:00:00Z", "2024-05-01T24:00:00Z", "2024-05-01T10:00:00.Z", strings.Repeat("9", 20) + "Z"} {
		if _, err := parseLogTime([]byte(s)); err == nil {
			t.Errorf("%s parsed", s)
		}
	}
}
