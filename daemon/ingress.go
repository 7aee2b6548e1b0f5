package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/ingress"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/store"
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
	// ACME obtains the HTTPS listener's certificates automatically for the
	// routes' hosts from the ACME CA (default Let's Encrypt), answering
	// its HTTP-01 challenges on the HTTP listener. ACMERoot is a PEM CA
	// certificate to trust for a private CA's directory.
	ACME      bool
	ACMECA    string
	ACMEEmail string
	ACMERoot  string
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
	if c.ACME {
		a = append(a, "--acme", "--acme-ca", c.ACMECA, "--acme-email", c.ACMEEmail, "--acme-ca-root", c.ACMERoot)
	}
	return a
}

// hostsRelay hands the routes' hosts from the ingress controller to the
// certificate manager, which exists only once the listeners do.
type hostsRelay struct {
	mu   sync.Mutex
	f    func([]string)
	last []string
}

func (r *hostsRelay) Hosts(hosts []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = hosts
	if r.f != nil {
		r.f(hosts)
	}
}

func (r *hostsRelay) set(f func([]string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.f = f
	if r.last != nil {
		f(r.last)
	}
}

// listenIngress binds the ingress's HTTP and HTTPS listeners (before
// anything is served, so a taken port fails the start) and returns the
// components that serve them with h. With ACME, the certificate manager
// is one of the components and hears of the routes' hosts from hosts.
func listenIngress(cfg IngressConfig, dataDir string, h http.Handler, hosts *hostsRelay, log *slog.Logger) (map[string]func(context.Context) error, string, error) {
	parts := map[string]func(context.Context) error{}
	serve := func(name string, ln net.Listener, h http.Handler, tlsConf *tls.Config) {
		parts[name] = func(ctx context.Context) error {
			hs := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, TLSConfig: tlsConf}
			if tlsConf != nil {
				ln = tls.NewListener(ln, tlsConf)
			}
			return server.ServeHTTP(ctx, ln, hs, 10*time.Second)
		}
	}
	var tlsConf *tls.Config
	switch {
	case cfg.HTTPSAddr == "":
	case cfg.TLSCert != "" || cfg.TLSKey != "":
		if cfg.ACME {
			return nil, "", fmt.Errorf("--acme obtains certificates itself; drop --tls-cert and --tls-key, or --acme")
		}
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, "", fmt.Errorf("load TLS certificate %s and key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	case !cfg.ACME:
		return nil, "", fmt.Errorf("--https-addr needs certificates: --tls-cert and --tls-key (PEM files), or --acme to obtain them automatically")
	}
	if cfg.ACME && (cfg.HTTPSAddr == "" || cfg.HTTPAddr == "") {
		return nil, "", fmt.Errorf("--acme needs --https-addr to serve the certificates and --http-addr for the CA's HTTP-01 validation requests")
	}
	var httpLn net.Listener
	var httpAddr string
	if cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return nil, "", fmt.Errorf("ingress HTTP listener on %s: %w (choose another with --http-addr, or --http-addr off)", cfg.HTTPAddr, err)
		}
		httpLn, httpAddr = ln, ln.Addr().String()
	}
	handler := h
	if cfg.RedirectHTTP {
		handler = redirectToHTTPS(cfg.HTTPSAddr)
	}
	if cfg.ACME {
		a, err := newACME(dataDir, cfg, httpLn.Addr().(*net.TCPAddr).Port, log)
		if err != nil {
			httpLn.Close()
			return nil, "", err
		}
		tlsConf = a.tlsConfig()
		handler = a.challenges(handler)
		parts["acme"] = func(ctx context.Context) error {
			defer a.Stop()
			hosts.set(a.Hosts)
			return a.run(ctx)
		}
	}
	if cfg.HTTPSAddr != "" {
		ln, err := net.Listen("tcp", cfg.HTTPSAddr)
		if err != nil {
			if httpLn != nil {
				httpLn.Close()
			}
			return nil, "", fmt.Errorf("ingress HTTPS listener on %s: %w (choose another with --https-addr)", cfg.HTTPSAddr, err)
		}
		serve("https", ln, h, tlsConf)
	}
	if px, ok := h.(*ingress.Proxy); ok && httpLn != nil && !cfg.RedirectHTTP {
		// The plain HTTP listener takes the proxy's fast path, which hands
		// what it does not serve (and ACME's challenges) to net/http.
		var paths []string
		if cfg.ACME {
			paths = []string{acmeChallengePath}
		}
		parts["http"] = func(ctx context.Context) error {
			hs := &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
			return px.Serve(ctx, httpLn, ingress.ServeOptions{Fallback: hs, FallbackPaths: paths, Grace: 10 * time.Second})
		}
	} else if httpLn != nil {
		serve("http", httpLn, handler, nil)
	}
	return parts, httpAddr, nil
}

// acmeChallengePath is where certmagic answers HTTP-01 challenges.
const acmeChallengePath = "/.well-known/acme-challenge"

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

// watchPorts turns published ports the ingress cannot listen on into
// events (ingress.port_unavailable, and ingress.port_recovered once it
// is bound or no longer wanted): otherwise a stack whose port another program
// holds would look converged while nobody can reach it.
func watchPorts(ctx context.Context, ing interface {
	PortErrors(context.Context) ([]ingress.PortError, error)
}, st *store.Store, node string, log *slog.Logger) error {
	failing := map[uint16]ingress.PortError{}
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	event := func(typ string, e ingress.PortError, msg string) {
		stack, service, _ := strings.Cut(e.Service, "/")
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := st.AppendEvent(ectx, api.Event{Type: typ, Stack: stack, Service: service, Node: node, Message: msg}); err != nil && ctx.Err() == nil {
			log.Warn("record event", "type", typ, "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		errs, err := ing.PortErrors(pctx)
		cancel()
		if err != nil {
			continue // the proxy process is being restarted: its supervisor says so
		}
		now := map[uint16]ingress.PortError{}
		for _, e := range errs {
			now[e.Port] = e
			if _, known := failing[e.Port]; !known {
				event("ingress.port_unavailable", e, fmt.Sprintf("cannot publish port %d: %s; free it or change the service's ports", e.Port, e.Err))
			}
		}
		for port, e := range failing {
			if _, still := now[port]; !still {
				event("ingress.port_recovered", e, fmt.Sprintf("port %d no longer fails to publish (bound now, or no task wants it)", port))
			}
		}
		failing = now
	}
}
