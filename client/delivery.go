package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/berth-dev/berth/api"
)

// Registry describes the server's embedded registry and its credential.
func (c *Client) Registry(ctx context.Context) (api.RegistryInfo, error) {
	var out api.RegistryInfo
	err := c.do(ctx, http.MethodGet, "/v1/registry", nil, &out)
	return out, err
}

// RegistryGC collects the embedded registry's unreferenced blobs.
func (c *Client) RegistryGC(ctx context.Context, req api.RegistryGCRequest) (api.RegistryGCResult, error) {
	var out api.RegistryGCResult
	err := c.do(ctx, http.MethodPost, "/v1/registry/gc", req, &out)
	return out, err
}

// ApproveUpdate rolls out a service's pending auto-update.
func (c *Client) ApproveUpdate(ctx context.Context, stack, service string) error {
	return c.do(ctx, http.MethodPost, "/v1/stacks/"+url.PathEscape(stack)+"/services/"+url.PathEscape(service)+"/update/approve", nil, nil)
}
