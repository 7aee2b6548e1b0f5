package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/api"
)

// Alerts returns the firing alerts (all kept ones with all).
func (c *Client) Alerts(ctx context.Context, all bool) ([]api.Alert, error) {
	var out []api.Alert
	return out, c.do(ctx, http.MethodGet, "/v1/alerts?all="+strconv.FormatBool(all), nil, &out)
}

// DiskUsage returns berth's disk usage per stack.
func (c *Client) DiskUsage(ctx context.Context) (api.DiskUsage, error) {
	var out api.DiskUsage
	return out, c.do(ctx, http.MethodGet, "/v1/df", nil, &out)
}

// GC runs (or with DryRun plans) a collection.
func (c *Client) GC(ctx context.Context, req api.GCRequest) (api.GCReport, error) {
	var out api.GCReport
	return out, c.do(ctx, http.MethodPost, "/v1/gc", req, &out)
}

// Backup writes a backup archive to w.
func (c *Client) Backup(ctx context.Context, w io.Writer) error {
	return c.download(ctx, "/v1/backup", w)
}

// VolumeExport writes a tar of a stack's named volume to w.
func (c *Client) VolumeExport(ctx context.Context, stack, volume string, w io.Writer) error {
	return c.download(ctx, volumePath(stack, volume), w)
}

// VolumeImport extracts a tar from r into a stack's named volume.
func (c *Client) VolumeImport(ctx context.Context, stack, volume string, r io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+volumePath(stack, volume), r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var eb api.ErrorBody
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = strings.TrimSpace(string(b))
		}
		return kindError(resp.StatusCode, eb)
	}
	return nil
}

func volumePath(stack, volume string) string {
	return "/v1/stacks/" + url.PathEscape(stack) + "/volumes/" + url.PathEscape(volume) + "/archive"
}

// download copies a binary response to w. A body cut short by the server
// is an error, never a silently truncated file.
func (c *Client) download(ctx context.Context, path string, w io.Writer) error {
	resp, err := c.send(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("download %s: %w (the output is incomplete)", path, err)
	}
	return nil
}
