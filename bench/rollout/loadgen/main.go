// Command loadgen is the benchmark's load inside a container: where a
// service is reachable only from a container network (Swarm's routing
// mesh), it loops GET on a URL from several workers until SIGTERM and then
// prints what it saw as one JSON line.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/bench/internal/load"
)

// Result is the line loadgen prints.
type Result struct {
	OK       int    `json:"ok"`
	Failed   int    `json:"failed"`
	FirstErr string `json:"first_err,omitempty"`
}

func main() {
	addr := flag.String("addr", "web:8080", "host:port to GET / from")
	workers := flag.Int("workers", 8, "concurrent clients, one keep-alive connection each")
	warm := flag.Bool("from-first-ok", true, "count each worker's requests from its first success (the service coming up is not the rollout)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var mu sync.Mutex
	var res Result
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &load.Conn{Addr: *addr}
			defer c.Close()
			counting := !*warm
			for ctx.Err() == nil {
				err := c.Get()
				ok := err == nil
				if ctx.Err() != nil {
					return // a request cut by the end of the run is not counted
				}
				if !counting && !ok {
					mu.Lock()
					res.FirstErr = fmt.Sprint("before the first answer: ", err)
					mu.Unlock()
					time.Sleep(50 * time.Millisecond)
					continue
				}
				if !counting {
					mu.Lock()
					res.FirstErr = ""
					mu.Unlock()
				}
				counting = true
				mu.Lock()
				switch {
				case ok:
					res.OK++
				default:
					res.Failed++
					if res.FirstErr == "" {
						res.FirstErr = err.Error()
					}
				}
				mu.Unlock()
			}
		}()
	}
	<-ctx.Done()
	wg.Wait()
	_ = json.NewEncoder(os.Stdout).Encode(res)
}
