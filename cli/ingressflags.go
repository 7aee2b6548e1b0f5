package cli

import (
	"time"

	"github.com/berth-dev/berth/daemon"
	"github.com/spf13/pflag"
)

// ingressFlags are the ingress's listeners, shared by `berth up` and
// `berth proxy`.
type ingressFlags struct {
	http, https, cert, key, publish string
	redirect                        bool
	drain                           time.Duration
	acme                            bool
	acmeCA, acmeEmail, acmeRoot     string
}

func (o *ingressFlags) add(f *pflag.FlagSet) {
	f.StringVar(&o.http, "http-addr", ":80", "ingress HTTP listener for x-berth.routes (host:port, or off)")
	f.StringVar(&o.https, "https-addr", "off", "ingress HTTPS listener (TLS, HTTP/2) for x-berth.routes; needs --tls-cert and --tls-key")
	f.StringVar(&o.cert, "tls-cert", "", "PEM certificate (chain) for the HTTPS listener")
	f.StringVar(&o.key, "tls-key", "", "PEM private key for the HTTPS listener")
	f.BoolVar(&o.redirect, "redirect-http", false, "answer the HTTP listener with redirects to HTTPS")
	f.StringVar(&o.publish, "publish-host", "0.0.0.0", "address that Compose published ports listen on")
	f.DurationVar(&o.drain, "drain-timeout", 30*time.Second, "how long a stopping task's requests may take to finish")
	f.BoolVar(&o.acme, "acme", false, "obtain and renew the HTTPS listener's certificates for the routes' hosts automatically (ACME HTTP-01 on the HTTP listener)")
	f.StringVar(&o.acmeCA, "acme-ca", daemon.DefaultACMECA, "ACME directory URL of the certificate authority")
	f.StringVar(&o.acmeEmail, "acme-email", "", "contact address for the ACME account (expiry notices)")
	f.StringVar(&o.acmeRoot, "acme-ca-root", "", "PEM CA certificate to trust for the ACME directory (a private CA)")
}

func (o *ingressFlags) config() daemon.IngressConfig {
	off := func(v string) string {
		if v == "off" {
			return ""
		}
		return v
	}
	return daemon.IngressConfig{
		HTTPAddr: off(o.http), HTTPSAddr: off(o.https), TLSCert: o.cert, TLSKey: o.key,
		RedirectHTTP: o.redirect, PublishHost: o.publish, DrainTimeout: o.drain,
		ACME: o.acme, ACMECA: o.acmeCA, ACMEEmail: o.acmeEmail, ACMERoot: o.acmeRoot,
	}
}
