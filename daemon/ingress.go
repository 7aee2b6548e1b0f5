package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/berth-dev/berth/server"
)

// IngressConfig is what the ingress listens on, wherever it runs.
type IngressConfig struct {
	// HTTPAddr serves x-berth.routes over HTTP (empty: no HTTP listener).
	HTTPAddr string
	// HTTPSAddr serves them over TLS with HTTP/2 (empty: no HTTPS listener);
	// TLSCert and TLSKey are PEM files.
	HTTPSAddr string
	TLSCert   string
	TLSKey    string
	// RedirectHTTP answers every request on HTTPAddr with a redirect to
	// HTTPS instead of proxying it.
	RedirectHTTP bool
	// PublishHost is the address published ports listen on (default 0.0.0.0).
	PublishHost string
	// DrainTimeout bounds how long a stopping task's requests may take.
	DrainTimeout time.Duration
}

// args renders the configuration as berth proxy flags.
func (c IngressConfig) args() []string {
	or := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	a := []string{"--http-addr", or(c.HTTPAddr, "off"), "--https-addr", or(c.HTTPSAddr, "off"),
		"--publish-host", c.PublishHost, "--drain-timeout", c.DrainTimeout.String()}
	if c.TLSCert != "" {
		a = append(a, "--tls-cert", c.TLSCert, "--tls-key", c.TLSKey)
	}
	if c.RedirectHTTP {
		a = append(a, "--redirect-http")
	}
	return a
}

// listenIngress binds the ingress's HTTP and HTTPS listeners (before
// anything is served, so a taken port fails the start) and returns the
// components that serve them with h.
func listenIngress(cfg IngressConfig, h http.Handler) (map[string]func(context.Context) error, string, error) {
	parts := map[string]func(context.Context) error{}
	var httpAddr string
	serve := func(name string, ln net.Listener, h http.Handler, tlsConf *tls.Config) {
		parts[name] = func(ctx context.Context) error {
			hs := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, TLSConfig: tlsConf}
			if tlsConf != nil {
				ln = tls.NewListener(ln, tlsConf)
			}
			return server.ServeHTTP(ctx, ln, hs, 10*time.Second)
		}
	}
	if cfg.HTTPSAddr != "" {
		if cfg.TLSCert == "" || cfg.TLSKey == "" {
			return nil, "", fmt.Errorf("--https-addr needs --tls-cert and --tls-key (PEM files)")
		}
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, "", fmt.Errorf("load TLS certificate %s and key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		ln, err := net.Listen("tcp", cfg.HTTPSAddr)
		if err != nil {
			return nil, "", fmt.Errorf("ingress HTTPS listener on %s: %w (choose another with --https-addr)", cfg.HTTPSAddr, err)
		}
		serve("https", ln, h, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
	}
	if cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return nil, "", fmt.Errorf("ingress HTTP listener on %s: %w (choose another with --http-addr, or --http-addr off)", cfg.HTTPAddr, err)
		}
		httpAddr = ln.Addr().String()
		handler := h
		if cfg.RedirectHTTP {
			handler = redirectToHTTPS(cfg.HTTPSAddr)
		}
		serve("http", ln, handler, nil)
	}
	return parts, httpAddr, nil
}

// redirectToHTTPS sends clients to the same host and path over HTTPS.
func redirectToHTTPS(httpsAddr string) http.Handler {
	_, port, _ := net.SplitHostPort(httpsAddr)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if port != "" && port != "443" {
			host = net.JoinHostPort(host, port)
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}
