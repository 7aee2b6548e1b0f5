package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/berth-dev/berth/api"
)

// Logs calls fn with a stack's lines in time order (and, with Follow, new
// lines as they come) until the stream ends, ctx ends or fn fails. The
// lines arrive as Server-Sent Events.
func (c *Client) Logs(ctx context.Context, stack string, req api.LogsRequest, fn func(api.LogLine) error) error {
	v := url.Values{}
	if req.Target != "" {
		v.Set("target", req.Target)
	}
	if req.Follow {
		v.Set("follow", "1")
	}
	if !req.Since.IsZero() {
		v.Set("since", req.Since.UTC().Format(time.RFC3339Nano))
	}
	if !req.Until.IsZero() {
		v.Set("until", req.Until.UTC().Format(time.RFC3339Nano))
	}
	if req.Grep != "" {
		v.Set("grep", req.Grep)
	}
	if req.Revision > 0 {
		v.Set("revision", strconv.Itoa(req.Revision))
	}
	if req.Tail > 0 {
		v.Set("tail", strconv.Itoa(req.Tail))
	}
	resp, err := c.send(ctx, http.MethodGet, "/v1/stacks/"+url.PathEscape(stack)+"/logs?"+v.Encode(), nil, "text/event-stream")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
		if !ok {
			continue // blank separators and comments
		}
		var l api.LogLine
		if err := json.Unmarshal(data, &l); err != nil {
			return fmt.Errorf("decode log line: %w", err)
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// Top returns the services' latest resource use and traffic (with their
// last hour when history is set), of one stack or all ("").
func (c *Client) Top(ctx context.Context, stack string, history bool) (api.TopReport, error) {
	var out api.TopReport
	return out, c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/top?stack=%s&history=%t", url.QueryEscape(stack), history), nil, &out)
}
