// Package load is the benchmarks' HTTP/1.1 load client: one keep-alive
// connection per worker, a request at a time, and no retries. Go's
// net/http client silently resends an idempotent request whose reused
// connection was closed under it; wrk and hey users see those as errors,
// so the benchmarks count every such request as failed too.
package load

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Conn sends GET requests over one keep-alive connection, dialing again
// after an error or a response that closes it.
type Conn struct {
	Addr    string // host:port to connect to
	Host    string // Host header (default Addr)
	Path    string // default "/"
	Timeout time.Duration

	c  net.Conn
	br *bufio.Reader
}

// Get sends one request and reads the whole response; any error, or a
// status other than 200, is a failed request.
func (c *Conn) Get() error {
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.c == nil {
		nc, err := net.DialTimeout("tcp", c.Addr, c.Timeout)
		if err != nil {
			return err
		}
		c.c, c.br = nc, bufio.NewReader(nc)
	}
	host, path := c.Host, c.Path
	if host == "" {
		host = c.Addr
	}
	if path == "" {
		path = "/"
	}
	_ = c.c.SetDeadline(time.Now().Add(c.Timeout))
	if _, err := fmt.Fprintf(c.c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: berth-bench\r\n\r\n", path, host); err != nil {
		c.Close()
		return err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.Close()
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		c.Close()
	}
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

// Close drops the connection; the next Get dials again.
func (c *Conn) Close() {
	if c.c != nil {
		c.c.Close()
		c.c, c.br = nil, nil
	}
}
