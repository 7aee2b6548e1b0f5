package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a certificate and key for host into dir.
func selfSigned(t *testing.T, dir, host string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLSFromFilesHTTP2AndRedirect: the ingress serves a route over TLS
// with a certificate from files, speaks HTTP/2, and redirects plain HTTP.
func TestTLSFromFilesHTTP2AndRedirect(t *testing.T) {
	t.Parallel()
	cert, key, pool := selfSigned(t, t.TempDir(), "hello.test")
	httpsPort := freePort(t)
	b := startBerth(t, "--https-addr", fmt.Sprintf("127.0.0.1:%d", httpsPort), "--tls-cert", cert, "--tls-key", key, "--redirect-http")
	doc := fmt.Sprintf(`
services:
  web:
    image: %s
    x-berth:
      routes:
        - host: hello.test
          port: 8080
`, helloImage)
	b.deploy("tls", doc)
	b.waitRunning("tls", "web", 1)

	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "hello.test"},
		ForceAttemptHTTP2: true,
	}}
	url := fmt.Sprintf("https://127.0.0.1:%d/", httpsPort)
	var proto, body string
	waitFor(t, 20*time.Second, "the HTTPS route", func() (bool, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Host = "hello.test"
		resp, err := c.Do(req)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		proto, body = resp.Proto, string(b)
		return resp.StatusCode == 200, resp.Status
	})
	if proto != "HTTP/2.0" || !strings.Contains(body, "hello from") {
		t.Fatalf("over TLS: %s %q, want HTTP/2.0 and the app's answer", proto, body)
	}

	v, err := b.cl.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	noFollow := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, "http://"+v.Ingress+"/path?q=1", nil)
	req.Host = "hello.test"
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := fmt.Sprintf("https://hello.test:%d/path?q=1", httpsPort)
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("plain HTTP: %d to %q, want 308 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}
