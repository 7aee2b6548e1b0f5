package ingress

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc, raw string
		err       error // nil: parsed; errIncomplete, errFallback; or a refusal status below
		status    int
	}{
		{desc: "simple", raw: "GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n"},
		{desc: "bare LF", raw: "GET / HTTP/1.1\nHost: x\n\n"},
		{desc: "leading empty line", raw: "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{desc: "incomplete", raw: "GET / HTTP/1.1\r\nHost: x\r\n", err: errIncomplete},
		{desc: "HTTP/1.0", raw: "GET / HTTP/1.0\r\n\r\n", err: errFallback},
		{desc: "h2c preface", raw: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", err: errFallback},
		{desc: "upgrade", raw: "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", err: errFallback},
		{desc: "gzip coding", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", err: errFallback},
		{desc: "CL and TE", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", status: 400},
		{desc: "huge length", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", status: 400},
		{desc: "bad method", raw: "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{desc: "bad version", raw: "GET / HTTX/1.1\r\nHost: x\r\n\r\n", status: 400},
		{desc: "bad host", raw: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var req h1Request
			n, err := parseRequest([]byte(tc.raw), &req)
			if tc.status != 0 {
				he, ok := err.(*h1Error)
				if !ok || he.status != tc.status {
					t.Fatalf("err %v, want status %d", err, tc.status)
				}
				return
			}
			if err != tc.err {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err == nil && n != len(tc.raw) {
				t.Errorf("head length %d of %d", n, len(tc.raw))
			}
		})
	}
}

func TestCopyChunked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ desc, in, out string }{
		{"chunks and trailer", "3;x=y\r\nabc\r\nA\r\n0123456789\r\n0\r\nT: v\r\n\r\n", "3\r\nabc\r\na\r\n0123456789\r\n0\r\nT: v\r\n\r\n"},
		{"empty", "0\r\n\r\n", "0\r\n\r\n"},
	} {
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		if err := copyChunked(w, bufio.NewReader(strings.NewReader(tc.in))); err != nil {
			t.Fatalf("%s: %v", tc.desc, err)
		}
		w.Flush()
		if out.String() != tc.out {
			t.Errorf("%s: %q", tc.desc, out.String())
		}
	}
	for _, bad := range []string{"3\nabc\r\n0\r\n\r\n", "3\r\nabcd\r\n0\r\n\r\n", "zz\r\n", "\r\n", "1000000000000000\r\n", "3\r\nab"} {
		w := bufio.NewWriter(&bytes.Buffer{})
		if err := copyChunked(w, bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseResponse(t *testing.T) {
	t.Parallel()
	var resp h1Response
	raw := "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close, X-A\r\nX-A: 1\r\nKeep-Alive: 5\r\n\r\n"
	n, err := parseResponse([]byte(raw), &resp)
	if err != nil || n != len(raw) || resp.status != 200 || resp.contentLength != 5 || !resp.close || len(resp.headers) != 1 {
		t.Fatalf("%d %v %+v", n, err, resp)
	}
	if _, err := parseResponse([]byte("HTTP/1.0 204 No Content\r\n\r\n"), &resp); err != nil || !resp.close {
		t.Errorf("HTTP/1.0 keeps the connection: %v %+v", err, resp)
	}
	for _, bad := range []string{"HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "SPDY/3 200 OK\r\n\r\n"} {
		if _, err := parseResponse([]byte(bad), &resp); err != errBadResponse {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// FuzzParseRequest: the parser never panics, never reads past its input,
// and never accepts a request with two framings.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a?b=c HTTP/1.1\r\nHost: x:80\r\nContent-Length: 3\r\nConnection: close, X-A\r\nX-A: 1\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
		"GET / HTTP/1.1\nHost: x\n\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
		"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nFoo: bar\r\n baz\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req h1Request
		n, err := parseRequest(b, &req)
		if err != nil {
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("head length %d of %d", n, len(b))
		}
		if req.chunked && req.contentLength >= 0 {
			t.Fatal("two framings accepted")
		}
		if len(req.host) == 0 && !bytes.Contains(bytes.ToLower(b[:n]), []byte("host:")) {
			t.Fatal("no Host accepted")
		}
		if len(req.target) == 0 || req.target[0] != '/' {
			t.Fatalf("target %q", req.target)
		}
		// The body relay must not panic on whatever follows either.
		w := bufio.NewWriter(&bytes.Buffer{})
		_ = copyChunked(w, bufio.NewReader(bytes.NewReader(b[n:])))
	})
}

// FuzzParseResponse: a task's response head and chunked body never make
// the parser panic or read past its input.
func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: T\r\n\r\n2\r\nok\r\n0\r\nT: v\r\n\r\n",
		"HTTP/1.0 103 Early Hints\nLink: </a>\n\n",
		"HTTP/1.1 204 No Content\r\nConnection: close, X-A\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var resp h1Response
		n, err := parseResponse(b, &resp)
		if err != nil {
			return
		}
		if n <= 0 || n > len(b) || resp.status < 100 || resp.status > 999 {
			t.Fatalf("head length %d of %d, status %d", n, len(b), resp.status)
		}
		if resp.chunked && resp.contentLength >= 0 {
			t.Fatal("two framings kept")
		}
		w := bufio.NewWriter(&bytes.Buffer{})
		_ = copyChunked(w, bufio.NewReader(bytes.NewReader(b[n:])))
	})
}
