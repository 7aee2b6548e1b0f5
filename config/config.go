// Package config reads berth's configuration file: the settings of a
// node's operations that are not part of any stack (engine watchdog,
// alerts and their notifiers, event retention, housekeeping). `berth up`
// reads DATA_DIR/berth.yaml, or the file --config names; every section is
// optional and its zero value means the defaults.
//
//	watchdog:
//	  interval: 2s
//	  hang: 5s
//	  remediation: [systemctl, restart, docker]
//	events:
//	  max_age: 720h
//	alerts:
//	  notifiers:
//	    - {name: ops, type: webhook, url: "https://ops.example.com/hook"}
//	housekeeping:
//	  keep_revisions: 5
//	  budget: 20GB
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/berth-dev/berth/alerts"
	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/housekeeping"
	"github.com/berth-dev/berth/watchdog"
)

// FileName is the configuration file's name inside the data directory.
const FileName = "berth.yaml"

// File is berth's configuration file.
type File struct {
	Watchdog     watchdog.Config     `yaml:"watchdog"`
	Events       Events              `yaml:"events"`
	Alerts       alerts.Config       `yaml:"alerts"`
	Housekeeping housekeeping.Config `yaml:"housekeeping"`
	// Path is where the file was read from ("" when none was).
	Path string `yaml:"-"`
}

// Events is the retention of the event history: events older than
// MaxAge, and beyond the newest MaxCount, are trimmed.
type Events struct {
	MaxAge   time.Duration `yaml:"max_age"`   // default 720h (30 days)
	MaxCount int           `yaml:"max_count"` // default 10000
}

// Path returns the configuration file berth up reads: explicit if set,
// otherwise DATA_DIR/berth.yaml.
func Path(dataDir, explicit string) string {
	if explicit != "" {
		return explicit
	}
	return filepath.Join(dataDir, FileName)
}

// Load reads a configuration file. A missing file is the defaults unless
// required (the user named it with --config).
func Load(path string, required bool) (File, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !required {
		return File{}, nil
	}
	if err != nil {
		return File{}, fmt.Errorf("%w: read configuration: %v", api.ErrInvalid, err)
	}
	f, err := Parse(b)
	if err != nil {
		return File{}, fmt.Errorf("%w: %s: %v (see `berth up --help` for the format)", api.ErrInvalid, path, err)
	}
	f.Path = path
	return f, nil
}

// Parse decodes and validates a configuration document. Unknown fields
// are errors (a misspelt setting must not be silently ignored).
func Parse(b []byte) (File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return File{}, err
	}
	if err := f.Validate(); err != nil {
		return File{}, err
	}
	return f, nil
}

// Validate checks every section.
func (f File) Validate() error {
	if err := f.Watchdog.Validate(); err != nil {
		return err
	}
	if f.Events.MaxAge < 0 || f.Events.MaxCount < 0 {
		return api.Invalidf("events: max_age and max_count must not be negative")
	}
	if err := f.Alerts.Validate(); err != nil {
		return err
	}
	return f.Housekeeping.Validate()
}
