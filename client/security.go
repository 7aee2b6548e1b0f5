package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/berth-dev/berth/api"
)

// WithToken makes the client send token as its bearer token.
func (c *Client) WithToken(token string) *Client {
	c.token = token
	return c
}

// WithCA makes an https client trust the CA certificates in pem (in
// addition to the system's).
func (c *Client) WithCA(pem []byte) (*Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: the CA file holds no PEM certificate", api.ErrInvalid)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c.hc = &http.Client{Transport: tr}
	return c, nil
}

// Whoami returns who the server takes the client for.
func (c *Client) Whoami(ctx context.Context) (api.Whoami, error) {
	var out api.Whoami
	return out, c.do(ctx, http.MethodGet, "/v1/whoami", nil, &out)
}

func secretPath(stack, name string) string {
	return "/v1/stacks/" + url.PathEscape(stack) + "/secrets/" + url.PathEscape(name)
}

// Secrets lists a stack's secrets (never their values).
func (c *Client) Secrets(ctx context.Context, stack string) ([]api.SecretInfo, error) {
	var out []api.SecretInfo
	return out, c.do(ctx, http.MethodGet, "/v1/stacks/"+url.PathEscape(stack)+"/secrets", nil, &out)
}

// CreateSecret creates a secret; RotateSecret stores a new version and
// rolls the services that use it.
func (c *Client) CreateSecret(ctx context.Context, stack, name string, value []byte) (api.SecretChange, error) {
	var out api.SecretChange
	return out, c.do(ctx, http.MethodPost, secretPath(stack, name), api.SecretValue{Value: value}, &out)
}

// RotateSecret stores a new version of a secret.
func (c *Client) RotateSecret(ctx context.Context, stack, name string, value []byte) (api.SecretChange, error) {
	var out api.SecretChange
	return out, c.do(ctx, http.MethodPut, secretPath(stack, name), api.SecretValue{Value: value}, &out)
}

// RemoveSecret removes a secret no service uses.
func (c *Client) RemoveSecret(ctx context.Context, stack, name string) error {
	return c.do(ctx, http.MethodDelete, secretPath(stack, name), nil, nil)
}

// RotateKey rotates the key-encryption key.
func (c *Client) RotateKey(ctx context.Context) (api.KeyRotation, error) {
	var out api.KeyRotation
	return out, c.do(ctx, http.MethodPost, "/v1/secrets/rotate-key", struct{}{}, &out)
}

// CreateToken creates an API token.
func (c *Client) CreateToken(ctx context.Context, req api.TokenRequest) (api.TokenCreated, error) {
	var out api.TokenCreated
	return out, c.do(ctx, http.MethodPost, "/v1/tokens", req, &out)
}

// Tokens lists API tokens (without their secrets).
func (c *Client) Tokens(ctx context.Context) ([]api.Token, error) {
	var out []api.Token
	return out, c.do(ctx, http.MethodGet, "/v1/tokens", nil, &out)
}

// RevokeToken revokes a token.
func (c *Client) RevokeToken(ctx context.Context, id string) (api.Token, error) {
	var out api.Token
	return out, c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, &out)
}

// Tenants lists tenants with their quotas and usage.
func (c *Client) Tenants(ctx context.Context) ([]api.TenantUsage, error) {
	var out []api.TenantUsage
	return out, c.do(ctx, http.MethodGet, "/v1/tenants", nil, &out)
}

// SetTenant sets a tenant's quota.
func (c *Client) SetTenant(ctx context.Context, name string, q api.Quota) (api.Tenant, error) {
	var out api.Tenant
	return out, c.do(ctx, http.MethodPut, "/v1/tenants/"+url.PathEscape(name), q, &out)
}

// Audit returns the newest audit entries (of one stack if given).
func (c *Client) Audit(ctx context.Context, stack string, limit int) ([]api.AuditEntry, error) {
	q := url.Values{}
	if stack != "" {
		q.Set("stack", stack)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []api.AuditEntry
	return out, c.do(ctx, http.MethodGet, "/v1/audit?"+q.Encode(), nil, &out)
}

// HostAudit runs the CIS Docker Benchmark checks on the server's engine
// (on berth's own containers only with ownOnly).
func (c *Client) HostAudit(ctx context.Context, ownOnly bool, out any) error {
	return c.do(ctx, http.MethodGet, "/v1/audit/host?own="+strconv.FormatBool(ownOnly), nil, out)
}

// ErrDenied wraps 401 and 403 answers: no valid token, or a token
// without the role or tenant the call needs.
var ErrDenied = errors.New("access denied")
