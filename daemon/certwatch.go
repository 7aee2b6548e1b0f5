package daemon

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/store"
)

// certWatch records cert.expiring when a certificate the ingress serves
// (the --tls-cert file, and those ACME obtained under DATA_DIR/certificates)
// comes within warn of its expiry, and cert.renewed when it no longer is.
// Its memory of what it last said is the event history, so a restart
// neither repeats nor loses a word.
type certWatch struct {
	st    *store.Store
	files func() []string
	warn  time.Duration
	every time.Duration
	log   *slog.Logger
	said  map[string]string // subject → last event type
}

func newCertWatch(st *store.Store, dataDir, tlsCert string, warn time.Duration, log *slog.Logger) *certWatch {
	return &certWatch{st: st, warn: warn, every: time.Hour, log: log, said: map[string]string{},
		files: func() []string { return certFiles(dataDir, tlsCert) }}
}

// certFiles lists the certificate files to watch.
func certFiles(dataDir, tlsCert string) []string {
	var out []string
	if tlsCert != "" {
		out = append(out, tlsCert)
	}
	_ = filepath.WalkDir(filepath.Join(dataDir, "certificates"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".crt") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func (w *certWatch) run(ctx context.Context) error {
	for {
		w.check(ctx, time.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(w.every):
		}
	}
}

// check reads every certificate and records the changes.
func (w *certWatch) check(ctx context.Context, now time.Time) {
	for _, path := range w.files() {
		host, notAfter, err := leaf(path)
		if err != nil {
			w.log.Debug("read certificate", "path", path, "err", err)
			continue
		}
		typ, msg := "cert.renewed", fmt.Sprintf("certificate for %s valid until %s", host, notAfter.Format(time.RFC3339))
		if left := notAfter.Sub(now); left < w.warn {
			typ = "cert.expiring"
			msg = fmt.Sprintf("certificate for %s expires %s (in %s; %s)", host, notAfter.Format(time.RFC3339), left.Round(time.Hour), path)
			if left <= 0 {
				msg = fmt.Sprintf("certificate for %s expired %s (%s)", host, notAfter.Format(time.RFC3339), path)
			}
		}
		last, ok := w.said[host]
		if !ok {
			e, found, err := w.st.LastEvent(ctx, func(e api.Event) bool {
				return e.Subject == host && strings.HasPrefix(e.Type, "cert.")
			})
			if err != nil {
				continue
			}
			if found {
				last = e.Type
			} else {
				last = "cert.renewed" // never warned: nothing to say while it is fine
			}
			w.said[host] = last
		}
		if last == typ {
			continue
		}
		if err := w.st.AppendEvent(ctx, api.Event{Type: typ, Subject: host, Message: msg}); err != nil {
			w.log.Warn("record event", "type", typ, "err", err)
			continue
		}
		w.said[host] = typ
	}
}

// leaf reads the first certificate of a PEM file: its host and expiry.
func leaf(path string) (string, time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", time.Time{}, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return "", time.Time{}, fmt.Errorf("%s: no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", time.Time{}, err
	}
	host := c.Subject.CommonName
	if len(c.DNSNames) > 0 {
		host = c.DNSNames[0]
	}
	if host == "" {
		host = filepath.Base(path)
	}
	return host, c.NotAfter, nil
}
