package ingress

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

// The fast path's HTTP/1.1 framing: request and response heads parsed in
// place from a bufio.Reader's buffer, and bodies relayed with their
// framing checked. Anything these parsers are not sure about is either
// refused (a request that could be read two ways: the smuggling cases) or
// handed to net/http (everything merely unusual), never guessed at.

// h1Header is one header field; both slices point into a read buffer.
type h1Header struct{ name, value []byte }

// h1Request is a parsed request head. Its slices point into the
// connection's read buffer: they are valid until the body is read.
type h1Request struct {
	method, target, path, host []byte
	headers                    []h1Header // end-to-end fields, in order
	connection                 [][]byte   // Connection field values
	contentLength              int64      // -1: none
	chunked                    bool
	close                      bool // Connection: close
	hasID                      bool // has an X-Request-Id
	teTrailers                 bool // TE: trailers, kept end to end
}

func (r *h1Request) hasBody() bool { return r.chunked || r.contentLength > 0 }

// h1Error is a request the fast path refuses: it answers status and
// closes the connection.
type h1Error struct {
	status int
	msg    string
}

func (e *h1Error) Error() string { return e.msg }

var (
	// errIncomplete: the buffer does not hold a whole head yet.
	errIncomplete = errors.New("incomplete head")
	// errFallback: the request is valid HTTP the fast path does not
	// serve; net/http takes the connection over.
	errFallback = errors.New("not for the fast path")
)

func badRequest(msg string) error { return &h1Error{400, msg} }

// parseRequest parses the request head at the start of buf. It returns
// the head's length, errIncomplete, errFallback or an *h1Error.
func parseRequest(buf []byte, req *h1Request) (int, error) {
	*req = h1Request{headers: req.headers[:0], connection: req.connection[:0], contentLength: -1}
	pos := 0
	// RFC 9112 §2.2: ignore empty lines before the request line.
	var line []byte
	for skipped := 0; ; skipped++ {
		l, n := nextLine(buf[pos:])
		if n == 0 {
			return 0, errIncomplete
		}
		pos += n
		if len(l) > 0 {
			line = l
			break
		}
		if skipped == 4 {
			return 0, badRequest("empty request line")
		}
	}
	if err := parseRequestLine(line, req); err != nil {
		return 0, err
	}
	hosts, lengths, encodings := 0, 0, 0
	for {
		l, n := nextLine(buf[pos:])
		if n == 0 {
			return 0, errIncomplete
		}
		pos += n
		if len(l) == 0 {
			break
		}
		name, value, err := splitField(l)
		if err != nil {
			return 0, err
		}
		switch fieldKind(name) {
		case fieldHost:
			hosts++
			if !validHost(value) {
				return 0, badRequest("malformed Host header")
			}
			req.host = value
		case fieldContentLength:
			lengths++
			n, ok := parseLength(value)
			if !ok {
				return 0, badRequest("invalid Content-Length")
			}
			req.contentLength = n
		case fieldTransferEncoding:
			encodings++
			req.chunked = eqFold(value, "chunked")
		case fieldConnection:
			req.connection = append(req.connection, value)
			if hasToken(value, "close") {
				req.close = true
			}
			if hasToken(value, "upgrade") {
				return 0, errFallback
			}
		case fieldUpgrade, fieldExpect, fieldHTTP2Settings:
			return 0, errFallback
		case fieldTE:
			req.teTrailers = req.teTrailers || hasToken(value, "trailers")
		case fieldHopByHop, fieldForwarded:
			// Dropped: hop-by-hop, or set by the proxy itself.
		case fieldRequestID:
			req.hasID = req.hasID || len(value) > 0
			req.headers = append(req.headers, h1Header{name, value})
		default:
			req.headers = append(req.headers, h1Header{name, value})
		}
	}
	switch {
	case hosts != 1:
		return 0, badRequest("a request needs exactly one Host header")
	case lengths > 1:
		return 0, badRequest("more than one Content-Length")
	case lengths > 0 && encodings > 0:
		// Two framings: the request could be read two ways (smuggling).
		return 0, badRequest("both Content-Length and Transfer-Encoding")
	case encodings > 1 || encodings == 1 && !req.chunked:
		return 0, errFallback // net/http answers 501 for codings it lacks
	}
	return pos, nil
}

func parseRequestLine(line []byte, req *h1Request) error {
	sp1 := indexByte(line, ' ')
	if sp1 <= 0 {
		return badRequest("malformed request line")
	}
	rest := line[sp1+1:]
	sp2 := indexByte(rest, ' ')
	if sp2 <= 0 {
		return badRequest("malformed request line")
	}
	req.method, req.target = line[:sp1], rest[:sp2]
	version := rest[sp2+1:]
	for _, c := range req.method {
		if !isTokenChar(c) {
			return badRequest("malformed method")
		}
	}
	for _, c := range req.target {
		if c <= ' ' || c == 0x7f {
			return badRequest("invalid character in request target")
		}
	}
	if string(version) != "HTTP/1.1" {
		if len(version) != 8 || string(version[:5]) != "HTTP/" {
			return badRequest("malformed HTTP version")
		}
		return errFallback // HTTP/1.0, the HTTP/2 preface (PRI * HTTP/2.0), …
	}
	if req.target[0] != '/' || string(req.method) == "CONNECT" {
		return errFallback // absolute form, *, authority form
	}
	req.path = req.target
	if i := indexByte(req.target, '?'); i >= 0 {
		req.path = req.target[:i]
	}
	return nil
}

// nextLine returns the first line of b without its end (CRLF, or a bare
// LF as net/http also accepts) and the bytes it took, 0 when b holds no
// whole line.
func nextLine(b []byte) ([]byte, int) {
	i := indexByte(b, '\n')
	if i < 0 {
		return nil, 0
	}
	line := b[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, i + 1
}

// splitField splits a header line into name and value, refusing what
// RFC 9112 §5 says a server must refuse: space before the colon, line
// folding, control characters.
func splitField(l []byte) ([]byte, []byte, error) {
	colon := indexByte(l, ':')
	if colon <= 0 {
		if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
			return nil, nil, badRequest("obsolete line folding")
		}
		return nil, nil, badRequest("malformed header line")
	}
	name := l[:colon]
	for _, c := range name {
		if !isTokenChar(c) {
			return nil, nil, badRequest("invalid header name")
		}
	}
	value := l[colon+1:]
	for len(value) > 0 && (value[0] == ' ' || value[0] == '\t') {
		value = value[1:]
	}
	for len(value) > 0 && (value[len(value)-1] == ' ' || value[len(value)-1] == '\t') {
		value = value[:len(value)-1]
	}
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return nil, nil, badRequest("invalid header value")
		}
	}
	return name, value, nil
}

// parseLength parses a Content-Length value: digits only, no sign, no
// list (a repeated length is refused rather than compared).
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

const (
	fieldOther = iota
	fieldHost
	fieldContentLength
	fieldTransferEncoding
	fieldConnection
	fieldUpgrade
	fieldExpect
	fieldHTTP2Settings
	fieldTE
	fieldHopByHop  // dropped on both sides
	fieldForwarded // set by the proxy; clients' values are dropped
	fieldRequestID
	fieldDate
	fieldTrailer
)

// fieldKind classifies the header names the proxy acts on.
func fieldKind(name []byte) int {
	switch len(name) {
	case 2:
		if eqFold(name, "te") {
			return fieldTE
		}
	case 4:
		switch {
		case eqFold(name, "host"):
			return fieldHost
		case eqFold(name, "date"):
			return fieldDate
		}
	case 6:
		if eqFold(name, "expect") {
			return fieldExpect
		}
	case 7:
		switch {
		case eqFold(name, "upgrade"):
			return fieldUpgrade
		case eqFold(name, "trailer"):
			return fieldTrailer
		}
	case 9:
		if eqFold(name, "forwarded") {
			return fieldForwarded
		}
	case 10:
		switch {
		case eqFold(name, "connection"):
			return fieldConnection
		case eqFold(name, "keep-alive"):
			return fieldHopByHop
		}
	case 12:
		if eqFold(name, "x-request-id") {
			return fieldRequestID
		}
	case 14:
		if eqFold(name, "content-length") {
			return fieldContentLength
		}
	case 15:
		if eqFold(name, "x-forwarded-for") {
			return fieldForwarded
		}
	case 16:
		switch {
		case eqFold(name, "proxy-connection"):
			return fieldHopByHop
		case eqFold(name, "x-forwarded-host"):
			return fieldForwarded
		case eqFold(name, "http2-settings"):
			return fieldHTTP2Settings
		}
	case 17:
		switch {
		case eqFold(name, "transfer-encoding"):
			return fieldTransferEncoding
		case eqFold(name, "x-forwarded-proto"):
			return fieldForwarded
		}
	case 18:
		if eqFold(name, "proxy-authenticate") {
			return fieldHopByHop
		}
	case 19:
		if eqFold(name, "proxy-authorization") {
			return fieldHopByHop
		}
	}
	return fieldOther
}

// h1Response is a parsed response head; slices point into the upstream
// connection's read buffer.
type h1Response struct {
	status        int
	statusText    []byte // "200 OK": the status line after the version
	headers       []h1Header
	connection    [][]byte
	contentLength int64 // -1: none
	chunked       bool
	close         bool // the upstream connection ends after this response
	hasDate       bool
}

var errBadResponse = errors.New("malformed response from the task")

// parseResponse parses the response head at the start of buf, like
// parseRequest: the head's length or errIncomplete or errBadResponse.
func parseResponse(buf []byte, resp *h1Response) (int, error) {
	*resp = h1Response{headers: resp.headers[:0], connection: resp.connection[:0], contentLength: -1}
	line, pos := nextLine(buf)
	if pos == 0 {
		return 0, errIncomplete
	}
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' {
		return 0, errBadResponse
	}
	keepAlive := line[7] == '1' // HTTP/1.0 closes unless it says otherwise
	code, ok := parseLength(line[9:12])
	if !ok || code < 100 || len(line) > 12 && line[12] != ' ' {
		return 0, errBadResponse
	}
	resp.status, resp.statusText = int(code), line[9:]
	lengths, encodings := 0, 0
	for {
		l, n := nextLine(buf[pos:])
		if n == 0 {
			return 0, errIncomplete
		}
		pos += n
		if len(l) == 0 {
			break
		}
		name, value, err := splitField(l)
		if err != nil {
			return 0, errBadResponse
		}
		switch fieldKind(name) {
		case fieldContentLength:
			n, ok := parseLength(value)
			if !ok || lengths > 0 && n != resp.contentLength {
				return 0, errBadResponse
			}
			lengths++
			resp.contentLength = n
		case fieldTransferEncoding:
			encodings++
			if !eqFold(value, "chunked") || encodings > 1 {
				return 0, errBadResponse // net/http's client refuses these too
			}
			resp.chunked = true
		case fieldConnection:
			resp.connection = append(resp.connection, value)
			switch {
			case hasToken(value, "close"):
				resp.close = true
			case hasToken(value, "keep-alive"):
				keepAlive = true
			}
		case fieldHopByHop, fieldUpgrade, fieldTE:
		case fieldDate:
			resp.hasDate = true
			resp.headers = append(resp.headers, h1Header{name, value})
		default:
			resp.headers = append(resp.headers, h1Header{name, value})
		}
	}
	if resp.chunked && lengths > 0 {
		// Both framings: chunked wins (RFC 9112 §6.3), and the connection
		// is not trusted with another response.
		resp.contentLength = -1
		resp.close = true
	}
	resp.close = resp.close || !keepAlive
	return pos, nil
}

// readHead waits until r holds a whole head and parses it with parse.
// A head larger than r's buffer is errHeadTooLarge.
func readHead(r *bufio.Reader, parse func([]byte) (int, error)) (int, error) {
	for {
		buf, _ := r.Peek(r.Buffered())
		n, err := parse(buf)
		if err != errIncomplete {
			return n, err
		}
		if r.Buffered() == r.Size() {
			return 0, errHeadTooLarge
		}
		if _, err := r.Peek(r.Buffered() + 1); err != nil {
			if err == io.EOF && r.Buffered() > 0 {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
}

var errHeadTooLarge = errors.New("head larger than the read buffer")

// copyBody copies n bytes (n < 0: until EOF) from src to dst. Whatever
// dst holds is flushed before waiting on src, so a response streamed by
// the task reaches the client as it comes, and a small one in one write.
func copyBody(dst *bufio.Writer, src *bufio.Reader, n int64) error {
	for n != 0 {
		if src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return &writeError{err}
			}
			if _, err := src.Peek(1); err != nil {
				if err == io.EOF && n < 0 {
					return nil
				}
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		k := src.Buffered()
		if n > 0 && int64(k) > n {
			k = int(n)
		}
		b, _ := src.Peek(k)
		if _, err := dst.Write(b); err != nil {
			return &writeError{err}
		}
		_, _ = src.Discard(k)
		if n > 0 {
			n -= int64(k)
		}
	}
	return nil
}

// writeError marks a failure to write to the other side of a copy.
type writeError struct{ err error }

func (e *writeError) Error() string { return "write: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

var errBadChunk = errors.New("malformed chunked encoding")

// maxTrailer bounds the trailer section of a chunked body.
const maxTrailer = 8 << 10

// copyChunked relays a chunked body from src to dst: sizes are checked
// and re-encoded (extensions dropped), every line must end in CRLF (a
// lone LF is how some smuggling attacks split a body two ways), and the
// trailer section is passed on.
func copyChunked(dst *bufio.Writer, src *bufio.Reader) error {
	for {
		line, err := chunkLine(dst, src)
		if err != nil {
			return err
		}
		if i := indexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
			line = line[:len(line)-1]
		}
		if len(line) == 0 || len(line) > 15 {
			return errBadChunk
		}
		var size int64
		for _, c := range line {
			d := unhex(c)
			if d < 0 {
				return errBadChunk
			}
			size = size<<4 | int64(d)
		}
		_, _ = dst.Write(strconv.AppendInt(dst.AvailableBuffer(), size, 16))
		_, _ = dst.WriteString("\r\n")
		if size == 0 {
			break
		}
		if err := copyBody(dst, src, size); err != nil {
			return err
		}
		end, err := chunkLine(dst, src)
		if err != nil {
			return err
		}
		if len(end) != 0 {
			return errBadChunk
		}
		if _, err := dst.WriteString("\r\n"); err != nil {
			return &writeError{err}
		}
	}
	for total := 0; ; {
		line, err := chunkLine(dst, src)
		if err != nil {
			return err
		}
		total += len(line) + 2
		if total > maxTrailer {
			return errBadChunk
		}
		if len(line) > 0 {
			if _, _, err := splitField(line); err != nil {
				return errBadChunk
			}
		}
		_, _ = dst.Write(line)
		if _, err := dst.WriteString("\r\n"); err != nil {
			return &writeError{err}
		}
		if len(line) == 0 {
			return nil
		}
	}
}

// chunkLine reads one CRLF-terminated line of chunked framing, flushing
// dst first if it has to wait.
func chunkLine(dst *bufio.Writer, src *bufio.Reader) ([]byte, error) {
	if src.Buffered() == 0 {
		if err := dst.Flush(); err != nil {
			return nil, &writeError{err}
		}
	}
	line, err := src.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull:
		return nil, errBadChunk
	case err == io.EOF:
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	case len(line) < 2 || line[len(line)-2] != '\r':
		return nil, errBadChunk
	}
	return line[:len(line)-2], nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func indexByte(b []byte, c byte) int { return bytes.IndexByte(b, c) }

// eqFold compares an ASCII header token with a lower-case string.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// hasToken reports whether a comma-separated header value lists tok
// (lower case), ignoring case and spaces.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		i := indexByte(v, ',')
		var t []byte
		if i < 0 {
			t, v = v, nil
		} else {
			t, v = v[:i], v[i+1:]
		}
		for len(t) > 0 && (t[0] == ' ' || t[0] == '\t') {
			t = t[1:]
		}
		for len(t) > 0 && (t[len(t)-1] == ' ' || t[len(t)-1] == '\t') {
			t = t[:len(t)-1]
		}
		if eqFold(t, tok) {
			return true
		}
	}
	return false
}

// listed reports whether a Connection header named field: such a field
// is hop-by-hop and not forwarded.
func listed(connection [][]byte, name []byte) bool {
	for _, v := range connection {
		for len(v) > 0 {
			i := indexByte(v, ',')
			var t []byte
			if i < 0 {
				t, v = v, nil
			} else {
				t, v = v[:i], v[i+1:]
			}
			for len(t) > 0 && (t[0] == ' ' || t[0] == '\t') {
				t = t[1:]
			}
			for len(t) > 0 && (t[len(t)-1] == ' ' || t[len(t)-1] == '\t') {
				t = t[:len(t)-1]
			}
			if len(t) == len(name) && eqFoldBytes(t, name) {
				return true
			}
		}
	}
	return false
}

func eqFoldBytes(a, b []byte) bool {
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// isTokenChar: RFC 9110 tchar.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// validHost accepts what net/http accepts in a Host header (httpguts).
func validHost(h []byte) bool {
	for _, c := range h {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			continue
		}
		switch c {
		case '!', '$', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', ':', ';', '=', '[', ']', '_', '~':
			continue
		}
		return false
	}
	return true
}
