package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/berth-dev/berth/api"
)

// events lists recent events, and with follow=1 streams new ones. The
// stream is NDJSON, or Server-Sent Events when the client accepts
// text/event-stream (the dashboard).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	stack := q.Get("stack")
	if stack != "" {
		if err := api.ValidateName("stack name", stack); err != nil {
			writeError(w, err)
			return
		}
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, api.Invalidf("limit %q: use a number from 1 to 10000", v))
			return
		}
		limit = n
	}
	since, _ := strconv.ParseInt(q.Get("since"), 10, 64)
	follow, _ := strconv.ParseBool(q.Get("follow"))
	ctx := r.Context()
	evs, err := s.store.ListEvents(ctx, since, limit)
	if err != nil {
		writeError(w, err)
		return
	}
	visible := s.visibility(ctx)
	var out []api.Event
	for _, e := range evs {
		if (stack == "" || e.Stack == stack) && visible(e.Stack) {
			out = append(out, e)
		}
	}
	if !follow {
		if out == nil {
			out = []api.Event{}
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	sse := r.Header.Get("Accept") == "text/event-stream"
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("Cache-Control", "no-cache")
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	send := func(e api.Event) {
		if sse {
			b, _ := json.Marshal(e)
			fmt.Fprintf(w, "id: %d\ndata: %s\n\n", e.Seq, b)
		} else {
			_ = enc.Encode(e)
		}
	}
	last := since
	for _, e := range out {
		send(e)
		last = e.Seq
	}
	if last == 0 && len(evs) > 0 {
		last = evs[len(evs)-1].Seq
	}
	if flusher != nil {
		flusher.Flush()
	}
	if last == 0 {
		// No events yet: watch from now.
		if cur, err := s.store.ListEvents(ctx, 0, 1); err == nil && len(cur) > 0 {
			last = cur[0].Seq
		}
	}
	stream := s.store.WatchEvents(ctx, last)
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-stream:
			if !ok {
				return
			}
			if (stack != "" && e.Stack != stack) || !visible(e.Stack) {
				continue
			}
			send(e)
		case <-keepalive.C:
			if sse {
				fmt.Fprint(w, ": keepalive\n\n")
			} else {
				_, _ = w.Write([]byte("\n"))
			}
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
}
