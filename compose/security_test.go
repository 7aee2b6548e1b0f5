package compose

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/berth-dev/berth/api"
)

func TestSecretValuesAndTrust(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "pw.txt", "from-a-file")
	writeFile(t, dir, "cosign.pub", "-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n")
	doc := `
services:
  web:
    image: x
    user: "1000"
    secrets:
      - pw
      - source: tok
        target: /run/secrets/token
      - ext
    x-berth:
      secrets_as_env: true
secrets:
  pw:
    file: ./pw.txt
  tok:
    environment: TOKEN
  ext:
    external: true
x-berth:
  trust:
    keys: [./cosign.pub]
`
	path := writeFile(t, dir, "compose.yaml", doc)
	env := map[string]string{"TOKEN": "from-the-environment"}
	st, err := Load(context.Background(), Options{Files: []string{path}, StackName: "t", Environ: env})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Secrets["ext"].External || st.Secrets["tok"].Environment != "TOKEN" {
		t.Errorf("secrets = %+v", st.Secrets)
	}
	if !st.Services["web"].SecretsAsEnv || !strings.Contains(strings.Join(st.Warnings, "\n"), "secrets_as_env") {
		t.Errorf("secrets_as_env not set or not warned: %v", st.Warnings)
	}
	if st.Trust == nil || len(st.Trust.Keys) != 1 || !strings.Contains(st.Trust.Keys[0], "PUBLIC KEY") {
		t.Errorf("trust = %+v", st.Trust)
	}
	vals, err := SecretValues(st, env)
	if err != nil {
		t.Fatal(err)
	}
	if string(vals["pw"]) != "from-a-file" || string(vals["tok"]) != "from-the-environment" || vals["ext"] != nil {
		t.Errorf("values = %q", vals)
	}
	if _, err := SecretValues(st, map[string]string{}); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "TOKEN is not set") {
		t.Errorf("unset variable: %v", err)
	}
	// The stack as sent carries no value.
	if err := st.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct{ doc, want string }{
		{"services:\n  web:\n    image: x\n    secrets:\n      - source: pw\n        target: /etc/passwd\nsecrets:\n  pw:\n    external: true\n", "directly under /run/secrets"},
		{"services:\n  web:\n    image: x\nx-berth:\n  trust:\n    keys: []\n", "at least one public key"},
		{"services:\n  web:\n    image: x\nx-berth:\n  trust:\n    keys: [./missing.pub]\n", "missing.pub"},
		{"services:\n  web:\n    image: x\n    x-berth:\n      secrets_as_env: yes-please\n", "true or false"},
	} {
		_, err := Load(context.Background(), Options{Files: []string{writeFile(t, dir, "bad.yaml", bad.doc)}, StackName: "t"})
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: err = %v, want %q", bad.doc, err, bad.want)
		}
	}
}
