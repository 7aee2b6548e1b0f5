package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/logs"
)

func unavailablef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", api.ErrUnavailable, fmt.Sprintf(format, args...))
}

// logQuery turns the request's parameters into a store query.
func (s *Server) logQuery(ctx context.Context, r *http.Request) (logs.Query, bool, error) {
	stack := r.PathValue("stack")
	if err := api.ValidateName("stack name", stack); err != nil {
		return logs.Query{}, false, err
	}
	q := logs.Query{Stack: stack}
	v := r.URL.Query()
	if _, _, err := s.store.GetStack(ctx, stack); err != nil && !s.ops.Logs.Has(stack) {
		return q, false, api.NotFoundf("stack %q is not deployed and has no logs; see `berth ls`", stack)
	}
	if t := v.Get("target"); t != "" {
		svcs, err := s.store.ListServices(ctx, stack)
		if err != nil {
			return q, false, err
		}
		for _, svc := range svcs {
			if svc.Name == t {
				q.Service = t
			}
		}
		if q.Service == "" {
			if err := api.ValidateName("service or task", t); err != nil {
				return q, false, err
			}
			q.Task = t
		}
	}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if raw := v.Get(p.name); raw != "" {
			t, err := time.Parse(time.RFC3339Nano, raw)
			if err != nil {
				return q, false, api.Invalidf("%s %q: use an RFC 3339 time such as 2006-01-02T15:04:05Z", p.name, raw)
			}
			*p.to = t
		}
	}
	if g := v.Get("grep"); g != "" {
		re, err := regexp.Compile(g)
		if err != nil {
			return q, false, api.Invalidf("grep %q is not a regular expression: %v", g, err)
		}
		q.Grep = re
	}
	for _, p := range []struct {
		name string
		to   *int
	}{{"revision", &q.Revision}, {"tail", &q.Tail}} {
		if raw := v.Get(p.name); raw != "" {
			n, err := strconv.Atoi(raw)
			if err != nil || n < 0 {
				return q, false, api.Invalidf("%s %q: use a number of 0 or more", p.name, raw)
			}
			*p.to = n
		}
	}
	follow, _ := strconv.ParseBool(v.Get("follow"))
	return q, follow, nil
}

// logs streams a stack's lines in time order: Server-Sent Events when the
// client accepts text/event-stream, NDJSON otherwise. With follow=1 the
// stream goes on with new lines as they are kept.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	if s.ops.Logs == nil {
		writeError(w, unavailablef("this process keeps no logs"))
		return
	}
	ctx := r.Context()
	q, follow, err := s.logQuery(ctx, r)
	if err != nil {
		writeError(w, err)
		return
	}
	sse := r.Header.Get("Accept") == "text/event-stream"
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("Cache-Control", "no-cache")
	out := &lineStream{bw: bufio.NewWriterSize(w, 64<<10), sse: sse}
	out.flusher, _ = w.(http.Flusher)
	pos, err := s.ops.Logs.Read(ctx, q, out.send)
	if err == nil && sse {
		err = out.comment("end of stored lines")
	}
	out.flush()
	if err != nil || !follow {
		return
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		idle := 0
		for {
			select {
			case <-fctx.Done():
				return
			case <-t.C:
				if out.flush() {
					idle = 0
				} else if idle++; idle >= 150 {
					idle = 0
					_ = out.comment("keepalive")
					out.flush()
				}
			}
		}
	}()
	_ = s.ops.Logs.Follow(fctx, q, pos, out.send)
	cancel()
	wg.Wait()
}

// lineStream writes lines to a response from one goroutine while another
// flushes it.
type lineStream struct {
	mu      sync.Mutex
	bw      *bufio.Writer
	flusher http.Flusher
	sse     bool
	dirty   bool
}

func (o *lineStream) send(l api.LogLine) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.dirty = true
	if o.sse {
		o.bw.WriteString("data: ")
		o.bw.Write(b)
		_, err = o.bw.WriteString("\n\n")
		return err
	}
	o.bw.Write(b)
	return o.bw.WriteByte('\n')
}

func (o *lineStream) comment(text string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.dirty = true
	if !o.sse {
		return o.bw.WriteByte('\n')
	}
	_, err := o.bw.WriteString(": " + text + "\n\n")
	return err
}

// flush sends what is buffered; it reports whether there was anything.
func (o *lineStream) flush() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.dirty {
		return false
	}
	o.dirty = false
	_ = o.bw.Flush()
	if o.flusher != nil {
		o.flusher.Flush()
	}
	return true
}
