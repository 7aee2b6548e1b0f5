package compose

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"encoding/json"
)

func TestScratch(t *testing.T) {
	doc := os.Getenv("DOC")
	dir := t.TempDir()
	if extra := os.Getenv("EXTRA"); extra != "" {
		os.WriteFile(filepath.Join(dir, "base.yaml"), []byte(extra), 0o600)
	}
	p := filepath.Join(dir, "compose.yaml")
	os.WriteFile(p, []byte(doc), 0o600)
	st, err := Load(context.Background(), Options{Files: []string{p}, StackName: os.Getenv("NAME"), Environ: map[string]string{"FOO": "fromenv"}})
	if err != nil {
		t.Logf("ERR: %v", err)
		return
	}
	b, _ := json.MarshalIndent(st, "", " ")
	t.Logf("%s", b)
}
