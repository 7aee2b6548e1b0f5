package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

func TestParse(t *testing.T) {
	f, err := Parse([]byte(`
watchdog: {interval: 1s, hang: 3s, remediation: [systemctl, restart, docker]}
events: {max_age: 48h}
alerts:
  notifiers:
    - {name: ops, type: webhook, url: "http://127.0.0.1:9/hook", max_per_minute: 5}
housekeeping: {keep_revisions: 3, budget: 20GB}
`))
	if err != nil {
		t.Fatal(err)
	}
	if f.Watchdog.Hang != 3*time.Second || f.Events.MaxAge != 48*time.Hour || len(f.Alerts.Notifiers) != 1 ||
		f.Housekeeping.KeepRevisions != 3 || f.Housekeeping.Budget != 20<<30 || len(f.Watchdog.Remediation) != 3 {
		t.Fatalf("parsed %+v", f)
	}
	if f, err := Parse(nil); err != nil || f.Watchdog.Disabled {
		t.Fatalf("empty file: %+v %v", f, err)
	}
}

func TestParseErrors(t *testing.T) {
	for doc, want := range map[string]string{
		"watchdog: {hangs: 3s}":                         "field hangs not found",
		"watchdog: {slow: 5s, hang: 1s}":                "must be shorter",
		"housekeeping: {budget: lots}":                  "use a size like 20GB",
		"housekeeping: {disk_threshold: 150}":           "percentage",
		"alerts: {notifiers: [{name: a, type: pager}]}": "type \"pager\"",
		"alerts: {disable: [nope]}":                     "no rule \"nope\"",
		"events: {max_age: soon}":                       "soon",
	} {
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", doc, err, want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if f, err := Load(Path(dir, ""), false); err != nil || f.Path != "" {
		t.Fatalf("missing default file: %+v %v", f, err)
	}
	if _, err := Load(filepath.Join(dir, "nope.yaml"), true); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("missing named file: %v", err)
	}
	p := filepath.Join(dir, FileName)
	if err := os.WriteFile(p, []byte("watchdog: {bogus: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Path(dir, ""), false); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), p) {
		t.Fatalf("bad file: %v", err)
	}
}
