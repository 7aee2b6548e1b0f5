package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// DefaultACMECA is Let's Encrypt's production directory.
const DefaultACMECA = "https://acme-v02.api.letsencrypt.org/directory"

// acme obtains and renews certificates for the hosts of the HTTP routes
// with certmagic: HTTP-01 challenges are answered on the ingress's HTTP
// listener, certificates and the ACME account are kept under the data
// directory (so a restarted proxy does not ask again), and renewal runs in
// the background.
type acme struct {
	cache  *certmagic.Cache
	cfg    *certmagic.Config
	issuer *certmagic.ACMEIssuer
	log    *slog.Logger

	mu      sync.Mutex
	managed map[string]bool
	want    []string
	wake    chan struct{}
}

// newACME prepares certificate management; httpPort is the port of the
// ingress's HTTP listener, where the CA's validation requests arrive.
func newACME(dataDir string, c IngressConfig, httpPort int, log *slog.Logger) (*acme, error) {
	ca := c.ACMECA
	if ca == "" {
		ca = DefaultACMECA
	}
	var roots *x509.CertPool
	if c.ACMERoot != "" {
		pem, err := os.ReadFile(c.ACMERoot)
		if err != nil {
			return nil, fmt.Errorf("--acme-ca-root: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--acme-ca-root %s: no PEM certificate in it", c.ACMERoot)
		}
	}
	a := &acme{log: log, managed: map[string]bool{}, wake: make(chan struct{}, 1)}
	var cfg *certmagic.Config
	a.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		Logger:           zap.NewNop(),
	})
	cfg = certmagic.New(a.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: filepath.Join(dataDir, "certificates")},
		Logger:  zap.NewNop(),
		OnEvent: a.event,
	})
	a.issuer = certmagic.NewACMEIssuer(cfg, certmagic.ACMEIssuer{
		CA:                      ca,
		Email:                   c.ACMEEmail,
		Agreed:                  true,
		TrustedRoots:            roots,
		DisableTLSALPNChallenge: true, // the HTTPS listener serves only routes
		AltHTTPPort:             httpPort,
		Logger:                  zap.NewNop(),
	})
	cfg.Issuers = []certmagic.Issuer{a.issuer}
	a.cfg = cfg
	return a, nil
}

// event logs what certmagic does with certificates.
func (a *acme) event(_ context.Context, event string, data map[string]any) error {
	switch event {
	case "cert_obtained":
		a.log.Info("certificate obtained", "host", data["identifier"], "renewal", data["renewal"])
	case "cert_failed":
		a.log.Warn("certificate not obtained", "host", data["identifier"], "renewal", data["renewal"], "err", data["error"])
	}
	return nil
}

// tlsConfig serves the managed certificates.
func (a *acme) tlsConfig() *tls.Config {
	tc := a.cfg.TLSConfig()
	tc.NextProtos = []string{"h2", "http/1.1"}
	tc.MinVersion = tls.VersionTLS12
	return tc
}

// challenges wraps the HTTP listener's handler to answer HTTP-01.
func (a *acme) challenges(h http.Handler) http.Handler { return a.issuer.HTTPChallengeHandler(h) }

// Hosts is told the routes' hosts whenever they change; it never blocks
// (the ingress calls it while it swaps its table).
func (a *acme) Hosts(hosts []string) {
	a.mu.Lock()
	a.want = hosts
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// run obtains certificates for hosts not managed yet, until ctx ends.
func (a *acme) run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.wake:
		}
		a.mu.Lock()
		hosts := a.want
		a.mu.Unlock()
		a.manage(ctx, hosts)
	}
}

// manage starts obtaining certificates for hosts not managed yet. Hosts
// that cannot have a public certificate (no dot, an IP address, a
// wildcard) are left out.
func (a *acme) manage(ctx context.Context, hosts []string) {
	a.mu.Lock()
	var add []string
	for _, h := range hosts {
		h = strings.ToLower(h)
		if a.managed[h] || !strings.Contains(h, ".") || strings.Contains(h, "*") || net.ParseIP(h) != nil {
			continue
		}
		a.managed[h] = true
		add = append(add, h)
	}
	a.mu.Unlock()
	if len(add) == 0 {
		return
	}
	sort.Strings(add)
	a.log.Info("obtaining certificates", "hosts", add)
	if err := a.cfg.ManageAsync(ctx, add); err != nil {
		a.log.Warn("manage certificates", "hosts", add, "err", err)
	}
}

// Stop ends renewals.
func (a *acme) Stop() { a.cache.Stop() }
