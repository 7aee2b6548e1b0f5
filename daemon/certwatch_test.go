package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-dev/berth/store"
)

func writeCert(t *testing.T, path, host string, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A certificate within the warning period is reported once as expiring,
// and as renewed once a fresh one replaces it; a restarted watch does
// not repeat itself.
func TestCertWatch(t *testing.T) {
	ctx := context.Background()
	st := store.OpenTest(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "tls.crt")
	acme := filepath.Join(dir, "certificates", "acme", "shop.example.com", "shop.example.com.crt")
	writeCert(t, file, "files.example.com", time.Now().Add(90*24*time.Hour))
	writeCert(t, acme, "shop.example.com", time.Now().Add(3*24*time.Hour))
	newWatch := func() *certWatch { return newCertWatch(st, dir, file, 14*24*time.Hour, slog.New(slog.DiscardHandler)) }

	w := newWatch()
	w.check(ctx, time.Now())
	w.check(ctx, time.Now())
	newWatch().check(ctx, time.Now()) // a restart
	types := func() []string {
		evs, err := st.ListEvents(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range evs {
			out = append(out, e.Type+" "+e.Subject)
		}
		return out
	}
	if got := types(); len(got) != 1 || got[0] != "cert.expiring shop.example.com" {
		t.Fatalf("events %v", got)
	}
	writeCert(t, acme, "shop.example.com", time.Now().Add(90*24*time.Hour))
	w.check(ctx, time.Now())
	newWatch().check(ctx, time.Now())
	if got := types(); len(got) != 2 || got[1] != "cert.renewed shop.example.com" {
		t.Fatalf("events %v", got)
	}
}
