// Package client is the Go client of berth's HTTP API, used by the CLI and
// the end-to-end tests.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/api"
)

// Client talks to one berth server.
type Client struct {
	host  string
	base  string
	hc    *http.Client
	token string
}

// New returns a client for host: "unix:///path/berth.sock", a plain socket
// path, or "http://host:port".
func New(host string) (*Client, error) {
	c := &Client{host: host}
	switch {
	case strings.HasPrefix(host, "unix://") || strings.HasPrefix(host, "/"):
		path := strings.TrimPrefix(host, "unix://")
		tr := &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
			MaxIdleConns: 4,
		}
		c.base = "http://berth"
		c.hc = &http.Client{Transport: tr}
	case strings.HasPrefix(host, "http://") || strings.HasPrefix(host, "https://"):
		if _, err := url.Parse(host); err != nil {
			return nil, fmt.Errorf("%w: host %q: %v", api.ErrInvalid, host, err)
		}
		c.base = strings.TrimSuffix(host, "/")
		c.hc = &http.Client{}
	default:
		return nil, fmt.Errorf("%w: host %q: use unix:///path/to/berth.sock or http(s)://host:port", api.ErrInvalid, host)
	}
	return c, nil
}

// Host is the address the client talks to.
func (c *Client) Host() string { return c.host }

// ErrDaemonUnreachable wraps failures to reach the server at all.
var ErrDaemonUnreachable = errors.New("berth daemon unreachable")

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode response of %s %s: %w", method, path, err)
	}
	return nil
}

// send performs a request and returns the response if it is a success;
// error responses are decoded into errors that wrap api's kinds.
func (c *Client) send(ctx context.Context, method, path string, body any, accept string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.unreachable(err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var eb api.ErrorBody
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = strings.TrimSpace(string(b))
		}
		return nil, kindError(resp.StatusCode, eb)
	}
	return resp, nil
}

func (c *Client) unreachable(err error) error {
	hint := "start it with `berth up`, or point BERTH_HOST/--host at a running server"
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%w at %s: no server is listening there; %s", ErrDaemonUnreachable, c.host, hint)
	}
	return fmt.Errorf("%w at %s: %v; %s", ErrDaemonUnreachable, c.host, err, hint)
}

func kindError(status int, eb api.ErrorBody) error {
	msg := eb.Error
	// The server's messages already start with the kind ("invalid: ...").
	for _, k := range []error{api.ErrInvalid, api.ErrNotFound, api.ErrConflict, api.ErrUnavailable} {
		msg = strings.TrimPrefix(msg, k.Error()+": ")
	}
	switch {
	case status == http.StatusBadRequest:
		return fmt.Errorf("%w: %s", api.ErrInvalid, msg)
	case status == http.StatusNotFound:
		return fmt.Errorf("%w: %s", api.ErrNotFound, msg)
	case status == http.StatusConflict:
		return fmt.Errorf("%w: %s", api.ErrConflict, msg)
	case status == http.StatusServiceUnavailable:
		return fmt.Errorf("%w: %s", api.ErrUnavailable, msg)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Errorf("%w: %s", ErrDenied, msg)
	default:
		return fmt.Errorf("server error (%d): %s", status, msg)
	}
}

// Version returns the server's version.
func (c *Client) Version(ctx context.Context) (api.VersionInfo, error) {
	var v api.VersionInfo
	return v, c.do(ctx, http.MethodGet, "/v1/version", nil, &v)
}

// Deploy deploys a stack.
func (c *Client) Deploy(ctx context.Context, req api.DeployRequest) (api.DeployResponse, error) {
	var out api.DeployResponse
	return out, c.do(ctx, http.MethodPost, "/v1/stacks/"+url.PathEscape(req.Stack.Name)+"/deploy", req, &out)
}

// Stacks lists deployed stacks.
func (c *Client) Stacks(ctx context.Context) ([]api.StackSummary, error) {
	var out []api.StackSummary
	return out, c.do(ctx, http.MethodGet, "/v1/stacks", nil, &out)
}

// Stack returns a stack's status.
func (c *Client) Stack(ctx context.Context, name string) (api.StackStatus, error) {
	var out api.StackStatus
	return out, c.do(ctx, http.MethodGet, "/v1/stacks/"+url.PathEscape(name), nil, &out)
}

// Remove removes a stack; its named volumes too when volumes is set.
func (c *Client) Remove(ctx context.Context, name string, volumes bool) error {
	return c.do(ctx, http.MethodDelete, "/v1/stacks/"+url.PathEscape(name)+"?volumes="+strconv.FormatBool(volumes), nil, nil)
}

// Scale sets a service's replicas.
func (c *Client) Scale(ctx context.Context, stack, service string, replicas int) error {
	return c.do(ctx, http.MethodPost, "/v1/stacks/"+url.PathEscape(stack)+"/services/"+url.PathEscape(service)+"/scale",
		api.ScaleRequest{Replicas: replicas}, nil)
}

// Action runs restart, stop or start on a stack, or on one service of it.
func (c *Client) Action(ctx context.Context, action, stack, service string) error {
	p := "/v1/stacks/" + url.PathEscape(stack) + "/" + action
	if service != "" {
		p += "?service=" + url.QueryEscape(service)
	}
	return c.do(ctx, http.MethodPost, p, nil, nil)
}

// Rollback points a stack's services (or one) back at an earlier revision.
func (c *Client) Rollback(ctx context.Context, stack string, req api.RollbackRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/stacks/"+url.PathEscape(stack)+"/rollback", req, nil)
}

// RolloutAction pauses, resumes or aborts rollouts of a stack (or one service).
func (c *Client) RolloutAction(ctx context.Context, stack, service, action string) error {
	p := "/v1/stacks/" + url.PathEscape(stack) + "/rollout/" + url.PathEscape(action)
	if service != "" {
		p += "?service=" + url.QueryEscape(service)
	}
	return c.do(ctx, http.MethodPost, p, nil, nil)
}

// Tasks lists tasks with their status (all stacks when stack is "").
func (c *Client) Tasks(ctx context.Context, stack string) ([]api.TaskView, error) {
	var out []api.TaskView
	return out, c.do(ctx, http.MethodGet, "/v1/tasks?stack="+url.QueryEscape(stack), nil, &out)
}

// Nodes lists nodes.
func (c *Client) Nodes(ctx context.Context) ([]api.Node, error) {
	var out []api.Node
	return out, c.do(ctx, http.MethodGet, "/v1/nodes", nil, &out)
}

// Revisions lists a service's revisions.
func (c *Client) Revisions(ctx context.Context, stack, service string) ([]api.Revision, error) {
	var out []api.Revision
	return out, c.do(ctx, http.MethodGet, "/v1/stacks/"+url.PathEscape(stack)+"/services/"+url.PathEscape(service)+"/revisions", nil, &out)
}

// Jobs lists a stack's job runs, newest first.
func (c *Client) Jobs(ctx context.Context, stack string) ([]api.JobRun, error) {
	var out []api.JobRun
	return out, c.do(ctx, http.MethodGet, "/v1/stacks/"+url.PathEscape(stack)+"/jobs", nil, &out)
}

// Events returns recent events (limit) of a stack or of all stacks.
func (c *Client) Events(ctx context.Context, stack string, limit int) ([]api.Event, error) {
	var out []api.Event
	return out, c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/events?stack=%s&limit=%d", url.QueryEscape(stack), limit), nil, &out)
}

// FollowEvents calls fn for recent and then new events until ctx ends or
// fn returns an error.
func (c *Client) FollowEvents(ctx context.Context, stack string, limit int, fn func(api.Event) error) error {
	resp, err := c.send(ctx, http.MethodGet, fmt.Sprintf("/v1/events?follow=1&stack=%s&limit=%d", url.QueryEscape(stack), limit), nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e api.Event
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("decode event: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// Run runs a one-off job and copies its output to stdout and stderr. It
// returns the job's exit code.
func (c *Client) Run(ctx context.Context, stack string, req api.RunRequest, stdout, stderr io.Writer) (int, error) {
	resp, err := c.send(ctx, http.MethodPost, "/v1/stacks/"+url.PathEscape(stack)+"/run", req, "")
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var f api.RunFrame
		if err := dec.Decode(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return -1, fmt.Errorf("job output ended without an exit code (server stopped?)")
			}
			return -1, fmt.Errorf("read job output: %w", err)
		}
		switch {
		case f.Done:
			if f.Error != "" {
				return f.ExitCode, fmt.Errorf("job %s: %s", f.JobID, f.Error)
			}
			return f.ExitCode, nil
		case f.Stream == "stderr":
			_, _ = io.WriteString(stderr, f.Data)
		default:
			_, _ = io.WriteString(stdout, f.Data)
		}
	}
}

// WaitReady polls the server until it answers or ctx ends.
func (c *Client) WaitReady(ctx context.Context) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.Version(cctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server at %s not ready: %w", c.host, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
