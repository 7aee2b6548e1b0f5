package ingress

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// BenchmarkFastPath sends GETs over one keep-alive connection through the
// fast path to a backend that answers a fixed response. Client and
// backend speak raw HTTP/1.1 and allocate nothing per request, so
// allocs/op is the proxy's own.
func BenchmarkFastPath(b *testing.B) {
	const resp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer bl.Close()
	go func() {
		for {
			c, err := bl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					// Requests from the proxy end with an empty line and carry no body.
					for {
						line, err := r.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := io.WriteString(c, resp); err != nil {
						return
					}
				}
			}()
		}
	}()

	p := New(Options{})
	if err := p.Update(Table{Routes: []Route{{Name: "s/w", Endpoints: []Endpoint{{TaskID: "a", Addr: bl.Addr().String(), Revision: 1}}}}}); err != nil {
		b.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- p.Serve(ctx, pl, ServeOptions{Fallback: &http.Server{Handler: p}, Grace: time.Second})
	}()
	defer func() { cancel(); <-done }()

	c, err := net.Dial("tcp", pl.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET / HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: bench\r\n\r\n")
	r := bufio.NewReaderSize(c, 4096)
	body := []byte("hello")
	read := func() {
		// Headers, then the 5-byte body.
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) <= 2 {
				break
			}
		}
		var got [5]byte
		if _, err := io.ReadFull(r, got[:]); err != nil || !bytes.Equal(got[:], body) {
			b.Fatalf("body %q, %v", got, err)
		}
	}
	c.Write(req) // warm the upstream connection
	read()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		read()
	}
}
